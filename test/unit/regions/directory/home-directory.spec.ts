import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { HomeDirectory } from "../../../../regions/directory/home-directory.ts";
import { openSqliteDirectory } from "../../../../regions/directory/sqlite-store.ts";
import type { DirectoryStore } from "../../../../regions/directory/store.ts";
import { DirectoryError } from "../../../../regions/directory/store.ts";
import { passThrough } from "../../../harness/pass-through-store.ts";
import { stalledDirectory } from "../../../harness/stalled-directory.ts";

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
	for (const stop of stops.splice(0)) await stop();
});

/** A region's view whose mirror stopped before `ann` registered, and the directory of the region she registered in. */
async function lagging(originAvailable: () => boolean, origin?: (store: DirectoryStore) => DirectoryStore) {
	const store = await openSqliteDirectory(":memory:");
	stops.push(() => store.close());
	const key = randomBytes(32);
	const view = stalledDirectory(store);
	await view.stall();
	const registrar = new HomeDirectory({ store, regions: ["cn-east"], blindIndexKey: key });
	await registrar.register("01aaaaaaaaaaaaaaaaaaaaaaaa", [{ kind: "username", value: "ann" }], { region: "cn-east", epoch: 1, state: "active", pinned: false });
	return new HomeDirectory({ store: origin ? origin(view) : view, regions: ["cn-east"], blindIndexKey: key, originAvailable });
}

describe("resolving an identity in a region whose mirror lags", () => {
	it("finds an identity registered a moment ago while the origin is available", async () => {
		const directory = await lagging(() => true);
		expect(await directory.resolve({ kind: "username", value: "ann" })).toBe("01aaaaaaaaaaaaaaaaaaaaaaaa");
		expect(await directory.resolve({ kind: "username", value: "bob" })).toBeUndefined();
	});

	it("answers from the mirror while the origin is unavailable, and when asking it fails", async () => {
		expect(await (await lagging(() => false)).resolve({ kind: "username", value: "ann" })).toBeUndefined();
		const unreachable = (view: DirectoryStore): DirectoryStore => ({
			...view,
			get: (k, opts) => (opts?.authoritative ? Promise.reject(new DirectoryError("DIRECTORY_UNAVAILABLE", "no quorum")) : view.get(k, opts))
		});
		const directory = await lagging(() => true, unreachable);
		expect(await directory.resolve({ kind: "username", value: "ann" })).toBeUndefined();
	});

	it("keeps the mirror's answer when the origin, asked through a server cut off from its leader, says not found", async () => {
		const store = await openSqliteDirectory(":memory:");
		stops.push(() => store.close());
		const key = randomBytes(32);
		await new HomeDirectory({ store, regions: ["cn-east"], blindIndexKey: key }).register("01bbbbbbbbbbbbbbbbbbbbbbbb", [{ kind: "username", value: "cem" }], {
			region: "cn-east",
			epoch: 1,
			state: "active",
			pinned: false
		});
		const blind: DirectoryStore = {
			...passThrough(store),
			get: (k, opts) => (opts?.authoritative ? Promise.resolve(undefined) : store.get(k, opts))
		};
		const directory = new HomeDirectory({ store: blind, regions: ["cn-east"], blindIndexKey: key, originAvailable: () => true });
		expect(await directory.resolve({ kind: "username", value: "cem" })).toBe("01bbbbbbbbbbbbbbbbbbbbbbbb");
	});
});
