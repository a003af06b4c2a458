import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadRegions } from "../../../regions/loader.ts";
import { SERVICES } from "../../../services/index.ts";
import { restrictedOf } from "./restricted-actions.ts";
import { checkCapabilityKeys, composePath, DEPLOY, parseCompose, ROOT } from "./stack-checks.ts";

/**
 * The keys of the restricted actions as deploy/ hands them out: deploy/README.md makes a key for
 * every capability the services restrict something to and says what each one restricts, and every
 * group that runs a restricted action gets the keys. A node missing a key it needs does not start,
 * so a stack brought up as the README says must hold them all.
 */
const REGION_IDS = loadRegions(join(ROOT, "regions", "definitions")).map(r => r.id);
const RESTRICTED = Object.entries(SERVICES).flatMap(([name, schema]) => restrictedOf(schema, name));
const CAPABILITIES: Record<string, string[]> = Object.fromEntries(
	Object.entries(SERVICES).map(([name, schema]) => [name, [...new Set(restrictedOf(schema, name).map(r => r.capability))]])
);
const ALL = [...new Set(RESTRICTED.map(r => r.capability))].sort();
const README = readFileSync(join(DEPLOY, "README.md"), "utf8");

/** The rows of the README's capability table, by capability. */
const ROWS = new Map(
	README.split("\n").flatMap(line => {
		const m = /^\| `([a-z][a-z0-9-]*)` \|/.exec(line);
		return m ? [[m[1]!, line] as const] : [];
	})
);

const readCompose = (id: string) => parseCompose(readFileSync(composePath(id), "utf8"));

describe("the move machinery", () => {
	it("is restricted to the move capability: sv-region's handover and moves, and every participant's move actions", () => {
		const move = RESTRICTED.filter(r => r.capability === "move").map(r => r.name);
		expect(move).toEqual(expect.arrayContaining(["sv-region.handover", "sv-region.move", "sv-region.startMove"]));
		for (const participant of ["auth-jwt", "auth-rbac", "sv-user"])
			for (const action of ["export", "import", "count", "delete"]) expect(move).toContain(`${participant}.move.${action}`);
		// Read-only and keyed by a random id: see deploy/README.md.
		expect(RESTRICTED.map(r => r.name)).not.toContain("sv-region.moveProgress");
	});
});

describe("deploy/README.md", () => {
	it("makes a key for every capability in its key command, and its variable table names them all", () => {
		const command = README.split("\n").find(l => l.startsWith("export EDGEHOME_CAPABILITY_KEYS="));
		const made = [...(command ?? "").matchAll(/([a-z][a-z0-9-]*):\$\(openssl rand -base64 32\)/g)].map(m => m[1]).sort();
		expect(made).toEqual(ALL);
		const variable = README.split("\n").find(l => l.startsWith("| `EDGEHOME_CAPABILITY_KEYS`")) ?? "";
		for (const capability of ALL) expect(variable).toContain(`${capability}:<base64>`);
	});

	it("has a row for each capability, naming everything restricted to it", () => {
		expect([...ROWS.keys()].sort()).toEqual(ALL);
		for (const { capability, name } of RESTRICTED) {
			const row = ROWS.get(capability) ?? "";
			const service = name.slice(0, name.indexOf("."));
			const local = name.slice(name.indexOf(".") + 1);
			expect(row.includes(`\`${name}\``) || (row.includes(`\`${local}\``) && row.includes(service)), `${name} in the ${capability} row`).toBe(true);
		}
	});
});

describe.each(REGION_IDS)("the %s stack", id => {
	it("gives every group that runs a restricted action the keys, from the required variable", () => {
		expect(checkCapabilityKeys(readCompose(id), composePath(id), CAPABILITIES)).toEqual([]);
	});

	it("would be caught giving a group none, or a key written down", () => {
		for (const keys of [undefined, "move:AAAA"]) {
			const compose = readCompose(id);
			const env = compose.services!.core!.environment as Record<string, unknown>;
			if (keys === undefined) delete env.EDGEHOME_CAPABILITY_KEYS;
			else env.EDGEHOME_CAPABILITY_KEYS = keys;
			expect(checkCapabilityKeys(compose, composePath(id), CAPABILITIES), String(keys)).toEqual([expect.stringMatching(/^service core: .*\bmove\b/)]);
		}
	});
});
