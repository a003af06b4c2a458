import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import type { DirectoryChange, DirectoryErrorCode, DirectoryStore, DirectoryWatch } from "../../../../regions/directory/store.ts";
import { DirectoryError, MAX_KEY_LENGTH, MAX_LIST_LIMIT } from "../../../../regions/directory/store.ts";

interface Value {
	n: number;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
	try {
		await promise;
	} catch (err) {
		return err;
	}
	throw new Error("expected a rejection");
}

async function expectCode(promise: Promise<unknown>, code: DirectoryErrorCode): Promise<void> {
	const err = await rejection(promise);
	expect(err).toBeInstanceOf(DirectoryError);
	expect((err as DirectoryError).code).toBe(code);
}

/** Polls until `check` holds: some stores deliver changes a moment after the write. */
async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
	const deadline = Date.now() + timeoutMs;
	while (!check()) {
		if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
		await sleep(10);
	}
}

/**
 * The promises of regions/directory/store.ts, for any implementation. `open` is called for each
 * test and may hand out stores over one shared backend, so every test writes only under its own
 * first key segment and looks only at those keys. `cleanup` runs once after the suite.
 */
export function directoryContract(name: string, open: () => Promise<DirectoryStore>, cleanup?: () => Promise<void>): void {
	describe(`directory store contract: ${name}`, () => {
		const run = randomBytes(4).toString("hex");
		let tests = 0;
		let store: DirectoryStore;
		let ns: string;
		const watches: DirectoryWatch[] = [];

		/** Records this test's changes; stopped after the test if the test does not stop it. */
		async function record(fromRevision?: number): Promise<{ changes: DirectoryChange<Value>[]; watch: DirectoryWatch }> {
			const changes: DirectoryChange<Value>[] = [];
			const watch = await store.watch<Value>(
				change => {
					if (change.key.startsWith(`${ns}.`)) changes.push(change);
				},
				fromRevision === undefined ? {} : { fromRevision }
			);
			watches.push(watch);
			return { changes, watch };
		}

		beforeEach(async () => {
			ns = `c${run}t${++tests}`;
			store = await open();
		});

		afterEach(async () => {
			await Promise.all(watches.splice(0).map(w => w.stop()));
			await store?.close();
		});

		if (cleanup) afterAll(cleanup);

		it("gets undefined for a key that was never written", async () => {
			expect(await store.get(`${ns}.missing`)).toBeUndefined();
		});

		it("creates a key and reads back its value and revision", async () => {
			const key = `${ns}.user.a`;
			const revision = await store.create<Value>(key, { n: 1 });
			expect(Number.isSafeInteger(revision) && revision > 0).toBe(true);
			expect(await store.get<Value>(key)).toEqual({ key, value: { n: 1 }, revision });
		});

		it("refuses to create an existing key with KEY_EXISTS and keeps the first value", async () => {
			const key = `${ns}.user.a`;
			const revision = await store.create<Value>(key, { n: 1 });
			await expectCode(store.create<Value>(key, { n: 2 }), "KEY_EXISTS");
			expect(await store.get<Value>(key)).toEqual({ key, value: { n: 1 }, revision });
		});

		it("creates a key again after it was deleted", async () => {
			const key = `${ns}.user.a`;
			const first = await store.create<Value>(key, { n: 1 });
			await store.delete(key);
			const second = await store.create<Value>(key, { n: 2 });
			expect(second).toBeGreaterThan(first);
			expect(await store.get<Value>(key)).toEqual({ key, value: { n: 2 }, revision: second });
		});

		it("updates at the current revision and returns a higher one", async () => {
			const key = `${ns}.user.a`;
			const first = await store.create<Value>(key, { n: 1 });
			const second = await store.update<Value>(key, { n: 2 }, first);
			expect(second).toBeGreaterThan(first);
			expect(await store.get<Value>(key)).toEqual({ key, value: { n: 2 }, revision: second });
		});

		it("refuses an update at a stale revision with REVISION_MISMATCH and leaves the value alone", async () => {
			const key = `${ns}.user.a`;
			const first = await store.create<Value>(key, { n: 1 });
			const second = await store.update<Value>(key, { n: 2 }, first);
			await expectCode(store.update<Value>(key, { n: 3 }, first), "REVISION_MISMATCH");
			expect(await store.get<Value>(key)).toEqual({ key, value: { n: 2 }, revision: second });
		});

		it("refuses to update a key that does not exist", async () => {
			const key = `${ns}.user.a`;
			await expectCode(store.update<Value>(key, { n: 1 }, 1), "REVISION_MISMATCH");
			expect(await store.get(key)).toBeUndefined();
		});

		it("lets exactly one of two concurrent updates from the same revision win", async () => {
			const key = `${ns}.user.a`;
			const first = await store.create<Value>(key, { n: 0 });
			const results = await Promise.allSettled([store.update<Value>(key, { n: 1 }, first), store.update<Value>(key, { n: 2 }, first)]);
			const won = results.flatMap((r, i) => (r.status === "fulfilled" ? [{ n: i + 1, revision: r.value }] : []));
			const lost = results.flatMap(r => (r.status === "rejected" ? [r.reason] : []));
			expect(won).toHaveLength(1);
			expect(lost).toHaveLength(1);
			expect(lost[0]).toBeInstanceOf(DirectoryError);
			expect((lost[0] as DirectoryError).code).toBe("REVISION_MISMATCH");
			expect(await store.get<Value>(key)).toEqual({ key, value: { n: won[0]!.n }, revision: won[0]!.revision });
		});

		it("refuses a delete at a stale revision and deletes at the current one", async () => {
			const key = `${ns}.user.a`;
			const first = await store.create<Value>(key, { n: 1 });
			const second = await store.update<Value>(key, { n: 2 }, first);
			await expectCode(store.delete(key, first), "REVISION_MISMATCH");
			expect(await store.get<Value>(key)).toEqual({ key, value: { n: 2 }, revision: second });
			await store.delete(key, second);
			expect(await store.get(key)).toBeUndefined();
		});

		it("deletes a key unconditionally, after which get says undefined", async () => {
			const key = `${ns}.user.a`;
			await store.create<Value>(key, { n: 1 });
			await store.delete(key);
			expect(await store.get(key)).toBeUndefined();
		});

		it("says the origin can commit a write while it can, and the write then commits", async () => {
			await store.checkOrigin();
			expect(await store.create<Value>(`${ns}.checked`, { n: 1 })).toBeGreaterThan(0);
		});

		it("numbers every write with a revision higher than the one before, across keys", async () => {
			const a = await store.create<Value>(`${ns}.a`, { n: 1 });
			const b = await store.create<Value>(`${ns}.b`, { n: 1 });
			const a2 = await store.update<Value>(`${ns}.a`, { n: 2 }, a);
			const c = await store.create<Value>(`${ns}.c`, { n: 1 });
			const b2 = await store.update<Value>(`${ns}.b`, { n: 2 }, b);
			const revisions = [a, b, a2, c, b2];
			expect([...revisions].sort((x, y) => x - y)).toEqual(revisions);
			expect(new Set(revisions).size).toBe(revisions.length);
		});

		it("accepts a key of the maximum length", async () => {
			const key = `${ns}.${"k".repeat(MAX_KEY_LENGTH - ns.length - 1)}`;
			expect(key).toHaveLength(MAX_KEY_LENGTH);
			const revision = await store.create<Value>(key, { n: 1 });
			expect(await store.get<Value>(key)).toEqual({ key, value: { n: 1 }, revision });
		});

		it("rejects invalid keys with INVALID_KEY and writes nothing", async () => {
			const before = await store.create<Value>(`${ns}.before`, { n: 0 });
			const { changes } = await record(before);
			const invalid = ["has space", "*", ">", "", "a..b", "x".repeat(300), `${ns}.*`, `${ns}.>`, `.${ns}`, `${ns}.`, `${ns}.a b`];
			for (const key of invalid) {
				await expectCode(store.create<Value>(key, { n: 1 }), "INVALID_KEY");
				await expectCode(store.update<Value>(key, { n: 1 }, before), "INVALID_KEY");
				await expectCode(store.delete(key), "INVALID_KEY");
				await expectCode(store.get(key), "INVALID_KEY");
			}
			for (const prefix of ["a..", "*", `${ns}.>`, "a b."]) await expectCode(store.list(prefix, { limit: 10 }), "INVALID_KEY");
			const after = await store.create<Value>(`${ns}.after`, { n: 1 });
			await until("the marker write", () => changes.length > 0);
			expect(changes).toEqual([{ key: `${ns}.after`, value: { n: 1 }, revision: after }]);
		});

		it("lists a prefix in revision order, page by page, without deleted keys or other prefixes", async () => {
			const home = `${ns}.home.cn-east.`;
			const live = new Map<string, { value: Value; revision: number }>();
			for (let i = 0; i < 27; i++) {
				const key = `${home}u${String(i).padStart(2, "0")}`;
				live.set(key, { value: { n: i }, revision: await store.create<Value>(key, { n: i }) });
				// Neighbours that a prefix compared by characters, not by tokens, would let in.
				if (i % 5 === 0) await store.create<Value>(`${ns}.home.cn-east2.u${i}`, { n: -i });
				if (i % 7 === 0) await store.create<Value>(`${ns}.user.u${i}`, { n: -i });
			}
			for (const i of [3, 11]) {
				const key = `${home}u${String(i).padStart(2, "0")}`;
				await store.delete(key, live.get(key)!.revision);
				live.delete(key);
			}
			// An update moves a key to the end of revision order.
			const moved = `${home}u00`;
			live.set(moved, { value: { n: 100 }, revision: await store.update<Value>(moved, { n: 100 }, live.get(moved)!.revision) });
			const expected = [...live].map(([key, e]) => ({ key, ...e })).sort((x, y) => x.revision - y.revision);
			expect(expected).toHaveLength(25);

			const first = await store.list<Value>(home, { limit: 10 });
			expect(first.entries).toEqual(expected.slice(0, 10));
			expect(first.next).toBe(expected[9]!.revision);
			const second = await store.list<Value>(home, { afterRevision: first.next!, limit: 10 });
			expect(second.entries).toEqual(expected.slice(10, 20));
			expect(second.next).toBe(expected[19]!.revision);
			const third = await store.list<Value>(home, { afterRevision: second.next!, limit: 10 });
			expect(third.entries).toEqual(expected.slice(20));
			expect(third.next).toBeNull();

			const exact = await store.list<Value>(home, { limit: 25 });
			expect(exact.entries).toEqual(expected);
			expect(exact.next).toBeNull();
			const beyond = await store.list<Value>(home, { afterRevision: expected[24]!.revision, limit: 10 });
			expect(beyond).toEqual({ entries: [], next: null });

			// A prefix that stops inside a segment matches keys by their characters.
			const both = await store.list<Value>(`${ns}.home.cn-east`, { limit: MAX_LIST_LIMIT });
			expect(both.entries.map(e => e.key).sort()).toEqual([...live.keys(), ...[0, 5, 10, 15, 20, 25].map(i => `${ns}.home.cn-east2.u${i}`)].sort());
			expect(both.next).toBeNull();
		});

		it("rejects list limits outside 1..MAX_LIST_LIMIT with a RangeError", async () => {
			for (const limit of [0, -1, 1.5, MAX_LIST_LIMIT + 1, Number.NaN]) await expect(store.list(`${ns}.`, { limit })).rejects.toBeInstanceOf(RangeError);
			await expect(store.list(`${ns}.`, { limit: MAX_LIST_LIMIT })).resolves.toEqual({ entries: [], next: null });
		});

		it("feeds a watcher creates, updates and deletes in order with their revisions", async () => {
			const { changes } = await record();
			const key = `${ns}.user.a`;
			const created = await store.create<Value>(key, { n: 1 });
			const updated = await store.update<Value>(key, { n: 2 }, created);
			await store.delete(key, updated);
			await until("three changes", () => changes.length >= 3);
			expect(changes.slice(0, 2)).toEqual([
				{ key, value: { n: 1 }, revision: created },
				{ key, value: { n: 2 }, revision: updated }
			]);
			expect(changes[2]).toMatchObject({ key, value: undefined });
			expect(changes[2]!.revision).toBeGreaterThan(updated);
			await sleep(100);
			expect(changes).toHaveLength(3);
		});

		it("replays the changes after a given revision, then keeps feeding new ones", async () => {
			// Each key changes once after `from`, so a store that keeps only each key's latest change replays the same.
			const gone = await store.create<Value>(`${ns}.gone`, { n: 0 });
			const x = await store.create<Value>(`${ns}.x`, { n: 0 });
			const from = x;
			const a = await store.create<Value>(`${ns}.a`, { n: 1 });
			const b = await store.create<Value>(`${ns}.b`, { n: 2 });
			const x2 = await store.update<Value>(`${ns}.x`, { n: 3 }, x);
			await store.delete(`${ns}.gone`, gone);

			const { changes } = await record(from);
			await until("the replay", () => changes.length >= 4);
			expect(changes.slice(0, 3)).toEqual([
				{ key: `${ns}.a`, value: { n: 1 }, revision: a },
				{ key: `${ns}.b`, value: { n: 2 }, revision: b },
				{ key: `${ns}.x`, value: { n: 3 }, revision: x2 }
			]);
			expect(changes[3]).toMatchObject({ key: `${ns}.gone`, value: undefined });

			const c = await store.create<Value>(`${ns}.c`, { n: 4 });
			await until("the live change", () => changes.length >= 5);
			expect(changes[4]).toEqual({ key: `${ns}.c`, value: { n: 4 }, revision: c });
		});

		it("does not replay what happened before a watch without a revision", async () => {
			await store.create<Value>(`${ns}.old`, { n: 0 });
			const { changes } = await record();
			const fresh = await store.create<Value>(`${ns}.new`, { n: 1 });
			await until("the new change", () => changes.length > 0);
			expect(changes).toEqual([{ key: `${ns}.new`, value: { n: 1 }, revision: fresh }]);
		});

		it("stops calling back once a watch is stopped", async () => {
			const stopped = await record();
			const running = await record();
			await store.create<Value>(`${ns}.a`, { n: 1 });
			await until("the first change", () => stopped.changes.length === 1 && running.changes.length === 1);
			await stopped.watch.stop();
			await store.create<Value>(`${ns}.b`, { n: 2 });
			// The watcher still running has seen the second change: the stopped one would have had it by now.
			await until("the second change", () => running.changes.length === 2);
			await sleep(100);
			expect(stopped.changes.map(c => c.key)).toEqual([`${ns}.a`]);
		});
	});
}
