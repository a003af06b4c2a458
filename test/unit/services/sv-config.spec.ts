import { afterAll, beforeAll, describe, expect, it } from "vitest";
import svConfig, { MAX_VALUE_BYTES } from "../../../services/sv-config/sv-config.service.ts";
import type { StartedServices } from "../../harness/embedded.ts";
import { startServices } from "../../harness/embedded.ts";

let node: StartedServices;
const call = (action: string, params: unknown) => node.broker.call(`sv-config.${action}`, params);
const rows = async () => (await node.stores.sql.db.selectFrom("config_entries").selectAll().execute()).length;

beforeAll(async () => {
	node = await startServices([svConfig], { broker: { cacher: "Memory" } });
});
afterAll(() => node.stop());

describe("sv-config", () => {
	it("stores a value and reads it back with its version", async () => {
		const set = await call("set", { key: "feature.signup", value: { enabled: true } });
		expect(set).toMatchObject({ key: "feature.signup", scope: "region", version: 1, value: { enabled: true } });
		expect(await call("get", { key: "feature.signup" })).toMatchObject({ version: 1, value: { enabled: true } });
	});

	it("answers a region override before the global default, and the global one without it", async () => {
		await call("set", { key: "limits.upload", scope: "global", value: 10 });
		expect(await call("get", { key: "limits.upload" })).toMatchObject({ scope: "global", value: 10 });
		await call("set", { key: "limits.upload", scope: "region", value: 25 });
		expect(await call("get", { key: "limits.upload" })).toMatchObject({ scope: "region", value: 25 });
		expect(await call("get", { key: "limits.upload", scope: "global" })).toMatchObject({ value: 10 });
	});

	it("never serves a stale cached read after a write", async () => {
		await call("set", { key: "cache.check", value: "a" });
		expect(await call("get", { key: "cache.check" })).toMatchObject({ value: "a" });
		await call("set", { key: "cache.check", value: "b" });
		expect(await call("get", { key: "cache.check" })).toMatchObject({ value: "b", version: 2 });
	});

	it("keeps every version and rolls back by writing an old value as the newest", async () => {
		for (const value of ["v1", "v2", "v3"]) await call("set", { key: "theme", value });
		const history = (await call("history", { key: "theme" })) as { version: number; value: string }[];
		expect(history.map(h => [h.version, h.value])).toEqual([
			[3, "v3"],
			[2, "v2"],
			[1, "v1"]
		]);
		expect(await call("rollback", { key: "theme", scope: "region", version: 1 })).toMatchObject({ version: 4, value: "v1" });
		expect(await call("get", { key: "theme" })).toMatchObject({ version: 4, value: "v1" });
	});

	it("gives concurrent writers distinct versions", async () => {
		const results = (await Promise.all(Array.from({ length: 10 }, (_, i) => call("set", { key: "race", value: i })))) as { version: number }[];
		expect(results.map(r => r.version).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
	});

	it("lists the current entries a page at a time, matching the prefix literally", async () => {
		for (const key of ["list.a", "list.b", "list.c", "listxd"]) await call("set", { key, value: key });
		await call("set", { key: "list.a", value: "newer" });
		const page1 = (await call("list", { prefix: "list.", pageSize: 2 })) as any;
		expect(page1.total).toBe(3);
		expect(page1.items.map((i: any) => [i.key, i.value])).toEqual([
			["list.a", "newer"],
			["list.b", "list.b"]
		]);
		const page2 = (await call("list", { prefix: "list.", pageSize: 2, page: 2 })) as any;
		expect(page2.items.map((i: any) => i.key)).toEqual(["list.c"]);
		// "_" is a LIKE wildcard; as a prefix it must match only itself.
		expect(((await call("list", { prefix: "list_" })) as any).total).toBe(0);
	});

	it("answers NOT_FOUND for a key that was never set", async () => {
		await expect(call("get", { key: "nope" })).rejects.toMatchObject({ code: 404, type: "NOT_FOUND" });
		await expect(call("rollback", { key: "theme", scope: "region", version: 99 })).rejects.toMatchObject({ code: 404, type: "NOT_FOUND" });
	});

	describe("bad input is refused and changes nothing", () => {
		const cases: [string, string, Record<string, unknown>][] = [
			["an unknown field", "set", { key: "x", value: 1, region: "eu-central" }],
			["a key with capitals", "set", { key: "Feature", value: 1 }],
			["a key with a slash", "set", { key: "../etc", value: 1 }],
			["a key over 128 characters", "set", { key: "k".repeat(129), value: 1 }],
			["an unknown scope", "set", { key: "x", scope: "planet", value: 1 }],
			["a missing value", "set", { key: "x" }],
			["a page size over 100", "list", { pageSize: 101 }],
			["page 0", "list", { page: 0 }],
			["a version that is not a positive integer", "rollback", { key: "theme", scope: "region", version: -1 }]
		];
		for (const [name, action, params] of cases) {
			it(`refuses ${name} with a validation error`, async () => {
				const before = await rows();
				await expect(call(action, params)).rejects.toMatchObject({ code: 422, type: "VALIDATION_ERROR" });
				expect(await rows()).toBe(before);
			});
		}

		it(`refuses a value over ${MAX_VALUE_BYTES} bytes with VALUE_TOO_LARGE`, async () => {
			const before = await rows();
			await expect(call("set", { key: "big", value: "x".repeat(MAX_VALUE_BYTES) })).rejects.toMatchObject({
				code: 413,
				type: "VALUE_TOO_LARGE"
			});
			expect(await rows()).toBe(before);
		});
	});
});
