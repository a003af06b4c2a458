import { readdirSync, readFileSync } from "node:fs";
import { basename, join, relative } from "node:path";
import FastestValidatorModule from "fastest-validator";
import type { RegionDefinition } from "./region.ts";
import { REGION_ID } from "./region.ts";

/** The shipped region files; EDGEHOME_REGIONS_DIR points a deployment at its own. */
export const DEFINITIONS_DIR = process.env.EDGEHOME_REGIONS_DIR || join(import.meta.dirname, "definitions");

/** A region file that cannot be used; names the file and the field so the fix is obvious. */
export class RegionConfigError extends Error {
	readonly file: string;
	readonly field: string;
	constructor(file: string, field: string, message: string) {
		super(`${file}: ${field}: ${message}`);
		this.name = "RegionConfigError";
		this.file = file;
		this.field = field;
	}
}

const port = { type: "number", integer: true, min: 1, max: 65535 } as const;
const country = { type: "string", pattern: /^[A-Z]{2}$/ } as const;
const url = (protocols: string[]) => ({
	type: "string",
	pattern: new RegExp(`^(${protocols.join("|")})://[^\\s]+$`)
});

// The package is CommonJS; at run time its default import is the class itself.
const FastestValidator = FastestValidatorModule as unknown as typeof FastestValidatorModule.default;

const check = new FastestValidator({ haltOnFirstError: true }).compile({
	$$strict: true,
	id: { type: "string", pattern: REGION_ID },
	name: { type: "string", min: 1, max: 80 },
	countries: { type: "array", min: 1, unique: true, items: country },
	residency: { type: "array", unique: true, items: country },
	endpoints: {
		type: "object",
		strict: true,
		props: {
			nats: url(["nats", "tls"]),
			mysql: url(["mysql"]),
			redis: url(["redis", "rediss"]),
			mongo: url(["mongodb", "mongodb\\+srv"])
		}
	},
	ports: {
		type: "object",
		strict: true,
		props: { app: port, www: port, cms: port, wx: port, metrics: port }
	}
});

/** Validates one parsed region file on its own. */
export function validateRegion(file: string, data: unknown): RegionDefinition {
	if (typeof data !== "object" || data === null || Array.isArray(data)) throw new RegionConfigError(file, "(root)", "must be a JSON object");
	const result = check(data);
	if (result !== true) {
		const [first] = result as { field?: string; type: string; message?: string }[];
		const field = first?.field ?? "(root)";
		const message = first?.type === "objectStrict" ? `unknown key (${first.message ?? ""})` : (first?.message ?? "invalid");
		throw new RegionConfigError(file, field, message);
	}
	const region = data as RegionDefinition;
	if (basename(file, ".json") !== region.id) throw new RegionConfigError(file, "id", `must match the file name, got "${region.id}"`);
	const stray = region.residency.find(c => !region.countries.includes(c));
	if (stray) throw new RegionConfigError(file, "residency", `${stray} is pinned but not in countries`);
	return region;
}

/** Checks what only shows across files: duplicate ids, shared ports, countries claimed twice. */
export function validateRegionSet(entries: { file: string; region: RegionDefinition }[]): void {
	const ids = new Map<string, string>();
	const ports = new Map<number, string>();
	const countries = new Map<string, string>();
	for (const { file, region } of entries) {
		const idOwner = ids.get(region.id);
		if (idOwner) throw new RegionConfigError(file, "id", `"${region.id}" is also the id in ${idOwner}`);
		ids.set(region.id, file);
		for (const [kind, value] of Object.entries(region.ports)) {
			const owner = ports.get(value);
			if (owner) throw new RegionConfigError(file, `ports.${kind}`, `port ${value} is also used by ${owner}`);
			ports.set(value, `${file} ports.${kind}`);
		}
		for (const c of region.countries) {
			const owner = countries.get(c);
			if (owner) throw new RegionConfigError(file, "countries", `${c} is also claimed by ${owner}`);
			countries.set(c, file);
		}
	}
}

/** Loads every `*.json` in the definitions folder, validated one by one and as a set. */
export function loadRegions(dir: string = DEFINITIONS_DIR): RegionDefinition[] {
	const files = readdirSync(dir)
		.filter(f => f.endsWith(".json"))
		.sort();
	if (files.length === 0) throw new RegionConfigError(dir, "(folder)", "holds no region file");
	const entries = files.map(name => {
		const path = join(dir, name);
		const file = relative(process.cwd(), path) || path;
		let data: unknown;
		try {
			data = JSON.parse(readFileSync(path, "utf8"));
		} catch (err) {
			throw new RegionConfigError(file, "(root)", `not valid JSON: ${(err as Error).message}`);
		}
		return { file, region: validateRegion(file, data) };
	});
	validateRegionSet(entries);
	return entries.map(e => e.region);
}

export function findRegion(regions: RegionDefinition[], id: string): RegionDefinition {
	const region = regions.find(r => r.id === id);
	if (!region) throw new RegionConfigError("--region", "id", `unknown region "${id}"; known: ${regions.map(r => r.id).join(", ")}`);
	return region;
}
