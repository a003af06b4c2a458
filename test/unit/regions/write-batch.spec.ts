import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FencedStore } from "../../harness/fenced-store.ts";
import { openFencedStore, savepointAmongOthers } from "../../harness/fenced-store.ts";

/**
 * Group commit of fenced writes on SQLite (embedded mode): one connection, so one batch at a
 * time, and a write that leaves its batch waits for that connection.
 */
let s: FencedStore;

beforeAll(async () => {
	s = await openFencedStore("sqlite::memory:");
});

afterAll(async () => {
	await s?.close();
});

describe("fenced writes committed in batches on SQLite", () => {
	it("commits concurrent writes in shared transactions, one batch at a time, and a nested write of another user joins its caller's", async () => {
		const fence = s.fence({ batchHoldMs: 5000 });
		const users = await Promise.all(Array.from({ length: 3 }, s.owned));
		const nested = await s.owned();
		await Promise.all([
			...users.flatMap(u => Array.from({ length: 10 }, (_, i) => fence.run(u, 1, () => s.insert(u, `w${i}`)))),
			fence.run(users[0]!, 1, async () => {
				await s.insert(users[0]!, "outer");
				await fence.run(nested, undefined, () => s.insert(nested, "nested"));
			})
		]);
		for (const u of users) expect(await s.tags(u)).toHaveLength(u === users[0] ? 11 : 10);
		expect(await s.tags(nested)).toEqual(["nested"]);
		expect(fence.batches.stats.writes).toBe(31);
		expect(fence.batches.stats.batches).toBeLessThan(10);
	});

	it("rolls a savepoint back alone while other writes share the batch, and keeps a failing write's rows", async () => {
		expect(await savepointAmongOthers(s)).toEqual({
			statuses: ["rejected: failed after writing", "fulfilled", "fulfilled"],
			rows: [["before"], ["after", "outside"], ["interleaved"]]
		});
	});

	it("answers the others within the hold time; the slow write's later statements are refused once the user is frozen", async () => {
		const fence = s.fence({ batchHoldMs: 30 });
		const [slowUser, fastUser] = await Promise.all([s.owned(), s.owned()]);
		let release!: () => void;
		const gate = new Promise<void>(r => (release = r));
		const slow = fence.run(slowUser, 1, async () => {
			await s.insert(slowUser, "before freeze");
			await gate;
			await s.insert(slowUser, "after freeze");
		});
		const started = Date.now();
		await fence.run(fastUser, 1, () => s.insert(fastUser, "fast"));
		expect(Date.now() - started).toBeLessThan(1000);
		await s.freeze(slowUser);
		release();
		await expect(slow).rejects.toMatchObject({ type: "OUTCOME_UNKNOWN" });
		expect(await s.tags(slowUser)).toEqual(["before freeze"]);
		expect(await s.tags(fastUser)).toEqual(["fast"]);
	});

	it("keeps an atomic write in its batch past the hold time, so all of its statements commit in one transaction", async () => {
		const fence = s.fence({ batchHoldMs: 30 });
		const [slowUser, fastUser] = await Promise.all([s.owned(), s.owned()]);
		const left = fence.batches.stats.left;
		const slowWrite = (user: string) => async () => {
			await s.insert(user, "debit");
			await new Promise(r => setTimeout(r, 120));
			await s.insert(user, "credit");
		};
		await Promise.all([fence.run(slowUser, 1, slowWrite(slowUser), true), fence.run(fastUser, 1, () => s.insert(fastUser, "fast"))]);
		expect(fence.batches.stats.left).toBe(left);
		expect((await s.tags(slowUser)).sort()).toEqual(["credit", "debit"]);
		// The same write, not atomic, leaves its batch once the hold time is up.
		const [other, otherFast] = await Promise.all([s.owned(), s.owned()]);
		await Promise.all([fence.run(other, 1, slowWrite(other)), fence.run(otherFast, 1, () => s.insert(otherFast, "fast"))]);
		expect(fence.batches.stats.left).toBe(left + 1);
	});

	it("checks anew a write that a finished write left behind (a timer, an event), rather than joining the finished write's transaction", async () => {
		const fence = s.fence();
		const user = await s.owned();
		let leftBehind!: Promise<unknown>;
		await fence.run(user, 1, async () => {
			await s.insert(user, "write");
			// Registered inside the write, so it inherits the write's async context; it runs after the write has returned.
			leftBehind = new Promise(r => setTimeout(r, 50)).then(() => fence.run(user, 1, () => s.insert(user, "left behind")));
		});
		await s.freeze(user);
		await expect(leftBehind).rejects.toMatchObject({ type: "USER_MOVING" });
		expect(await s.tags(user)).toEqual(["write"]);
	});
});
