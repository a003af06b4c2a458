import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DEFINITIONS_DIR, loadRegions, RegionConfigError, validateRegionSet } from "../../../regions/loader.ts";

let dir: string;

function edit(file: string, change: (region: any) => void): void {
	const path = join(dir, file);
	const region = JSON.parse(readFileSync(path, "utf8"));
	change(region);
	writeFileSync(path, JSON.stringify(region));
}

function loadError(): RegionConfigError {
	try {
		loadRegions(dir);
	} catch (err) {
		if (err instanceof RegionConfigError) return err;
		throw err;
	}
	throw new Error("loadRegions accepted the definitions");
}

beforeEach(() => {
	dir = mkdtempSync(join(tmpdir(), "edgehome-regions-"));
	cpSync(DEFINITIONS_DIR, dir, { recursive: true });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("region definitions", () => {
	it("ships cn-east, ap-south and eu-central with the documented ports and countries", () => {
		const regions = loadRegions();
		const byId = Object.fromEntries(regions.map(r => [r.id, r]));
		expect(Object.keys(byId).sort()).toEqual(["ap-south", "cn-east", "eu-central"]);
		expect(byId["cn-east"]!.ports).toEqual({ app: 8101, www: 8102, cms: 8103, wx: 8104, metrics: 8190 });
		expect(byId["ap-south"]!.ports).toEqual({ app: 8201, www: 8202, cms: 8203, wx: 8204, metrics: 8290 });
		expect(byId["eu-central"]!.ports).toEqual({ app: 8301, www: 8302, cms: 8303, wx: 8304, metrics: 8390 });
		expect(byId["cn-east"]!.countries).toEqual(["CN", "HK", "MO", "TW", "JP", "KR"]);
		expect(byId["ap-south"]!.countries).toEqual(["IN", "SG", "ID", "MY", "TH", "VN", "PH", "AU", "NZ"]);
		const eu = byId["eu-central"]!;
		expect(eu.countries).toHaveLength(30);
		expect(eu.countries).toEqual(expect.arrayContaining(["DE", "FR", "GB", "CH", "NO"]));
		expect(eu.residency).toHaveLength(27);
		expect(eu.residency).not.toContain("GB");
		expect(eu.residency).toContain("DE");
	});

	it("rejects an unknown key, naming the file and the key", () => {
		edit("cn-east.json", r => (r.ports.admin = 8105));
		const err = loadError();
		expect(err.file).toMatch(/cn-east\.json$/);
		expect(err.field).toBe("ports");
		expect(err.message).toMatch(/unknown key.*admin/);
	});

	it("rejects an unknown top-level key", () => {
		edit("ap-south.json", r => (r.colour = "green"));
		const err = loadError();
		expect(err.file).toMatch(/ap-south\.json$/);
		expect(err.message).toMatch(/colour/);
	});

	it("rejects a missing field, naming it", () => {
		edit("eu-central.json", r => delete r.endpoints.redis);
		const err = loadError();
		expect(err.file).toMatch(/eu-central\.json$/);
		expect(err.field).toBe("endpoints.redis");
	});

	it("rejects a duplicate id", () => {
		const [region] = loadRegions(dir);
		const copy = { ...region!, countries: ["XX"], ports: { app: 8401, www: 8402, cms: 8403, wx: 8404, metrics: 8490 } };
		let err: unknown;
		try {
			validateRegionSet([
				{ file: "a/cn-east.json", region: region! },
				{ file: "b/cn-east.json", region: copy }
			]);
		} catch (e) {
			err = e;
		}
		expect(err).toBeInstanceOf(RegionConfigError);
		expect((err as RegionConfigError).file).toBe("b/cn-east.json");
		expect((err as RegionConfigError).field).toBe("id");
		expect((err as RegionConfigError).message).toMatch(/also the id in a\/cn-east\.json/);
	});

	it("rejects a file whose id does not match its name, and two files with one id", () => {
		cpSync(join(dir, "cn-east.json"), join(dir, "cn-west.json"));
		const err = loadError();
		expect(err.file).toMatch(/cn-west\.json$/);
		expect(err.field).toBe("id");
		expect(err.message).toMatch(/file name/);
	});

	it("rejects a port used twice, naming both places", () => {
		edit("eu-central.json", r => (r.ports.metrics = 8190));
		const err = loadError();
		expect(err.file).toMatch(/eu-central\.json$/);
		expect(err.field).toBe("ports.metrics");
		expect(err.message).toMatch(/8190 is also used by .*cn-east\.json ports\.metrics/);
	});

	it("rejects a port clash inside one region", () => {
		edit("cn-east.json", r => (r.ports.www = r.ports.app));
		const err = loadError();
		expect(err.field).toBe("ports.www");
	});

	it("rejects a country claimed by two regions", () => {
		edit("ap-south.json", r => r.countries.push("JP"));
		const err = loadError();
		expect(err.field).toBe("countries");
		expect(err.message).toMatch(/JP is also claimed by .*/);
	});

	it("rejects a residency pin outside the region's countries", () => {
		edit("cn-east.json", r => r.residency.push("DE"));
		const err = loadError();
		expect(err.field).toBe("residency");
	});

	it("rejects malformed values: a bad country code, port and URL", () => {
		edit("cn-east.json", r => (r.countries[0] = "china"));
		expect(loadError().field).toBe("countries[0]");
		edit("cn-east.json", r => {
			r.countries[0] = "CN";
			r.ports.app = 70000;
		});
		expect(loadError().field).toBe("ports.app");
		edit("cn-east.json", r => {
			r.ports.app = 8101;
			r.endpoints.mysql = "postgres://db";
		});
		expect(loadError().field).toBe("endpoints.mysql");
	});

	it("rejects a file that is not JSON", () => {
		writeFileSync(join(dir, "cn-east.json"), "{ id: cn-east");
		const err = loadError();
		expect(err.file).toMatch(/cn-east\.json$/);
		expect(err.message).toMatch(/not valid JSON/);
	});

	it("makes the launchers exit non-zero with one line naming the file and field", () => {
		edit("cn-east.json", r => (r.ports.wx = "8104"));
		for (const launcher of ["app/launch/embedded.ts", "app/launch/region.ts"]) {
			const args = launcher.endsWith("region.ts") ? ["--region", "cn-east"] : ["--memory"];
			const run = spawnSync(process.execPath, [launcher, ...args], {
				env: { ...process.env, EDGEHOME_REGIONS_DIR: dir },
				encoding: "utf8",
				timeout: 20_000
			});
			expect(run.status).toBe(2);
			const lines = run.stderr
				.trim()
				.split("\n")
				.filter(l => !/ExperimentalWarning|--trace-warnings/.test(l));
			expect(lines).toHaveLength(1);
			expect(lines[0]).toMatch(/cn-east\.json: ports\.wx: /);
		}
	});

	it("makes the region launcher exit non-zero for an unknown region or service", () => {
		const unknownRegion = spawnSync(process.execPath, ["app/launch/region.ts", "--region", "mars-1"], { encoding: "utf8", timeout: 20_000 });
		expect(unknownRegion.status).toBe(2);
		expect(unknownRegion.stderr).toMatch(/unknown region "mars-1"/);
		const unknownService = spawnSync(process.execPath, ["app/launch/region.ts", "--region", "cn-east", "--services", "sv-nope"], {
			encoding: "utf8",
			timeout: 20_000
		});
		expect(unknownService.status).toBe(2);
		expect(unknownService.stderr).toMatch(/unknown service\(s\): sv-nope/);
	});
});
