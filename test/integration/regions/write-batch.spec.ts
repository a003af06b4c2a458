import { sql } from "kysely";
import { createConnection } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FencedStore } from "../../harness/fenced-store.ts";
import { openFencedStore, savepointAmongOthers, sleep } from "../../harness/fenced-store.ts";
import { cleanupRealStores, realStores, runId } from "../../harness/real-servers.ts";

/**
 * Group commit of fenced writes on real MariaDB (regions/ownership/write-batch.ts): writes of
 * one node that arrive together share one transaction, and each caller still gets what it got
 * alone. The fence is driven directly, so the tests choose which writes share a batch: writes
 * submitted in the same tick do.
 */
const stores = realStores(runId(), "cn-east");
let s: FencedStore;
const typeOf = (err: unknown) => (err as { type?: string }).type;
const bump = (name: string) =>
	s.db
		.updateTable("batch_counters")
		.set(eb => ({ n: eb("n", "+", 1) }))
		.where("name", "=", name)
		.execute();
const counters = async () => (await s.db.selectFrom("batch_counters").selectAll().orderBy("name").execute()).map(c => Number(c.n));

beforeAll(async () => {
	s = await openFencedStore(stores.sql);
	await s.db.schema
		.createTable("batch_counters")
		.addColumn("name", "varchar(8)", c => c.primaryKey())
		.addColumn("n", "integer", c => c.notNull())
		.execute();
	await s.db
		.insertInto("batch_counters")
		.values([
			{ name: "a", n: 0 },
			{ name: "b", n: 0 }
		])
		.execute();
});

afterAll(async () => {
	await s?.close();
	await cleanupRealStores({ ...stores, redis: undefined });
});

describe("fenced writes committed in batches on MariaDB", () => {
	it("commits writes that arrive together in one transaction, and a lone write without waiting for others", async () => {
		const fence = s.fence({ batchHoldMs: 5000 });
		const users = await Promise.all(Array.from({ length: 4 }, s.owned));
		const writes = users.flatMap(u => Array.from({ length: 10 }, (_, i) => fence.run(u, 1, () => s.insert(u, `w${i}`))));
		await Promise.all(writes);
		for (const u of users) expect(await s.tags(u)).toHaveLength(10);
		console.log(`40 concurrent writes of 4 users: ${fence.batches.stats.batches} batches`);
		expect(fence.batches.stats.writes).toBe(40);
		expect(fence.batches.stats.batches).toBeLessThan(10);

		// Alone, a write is not held for the others that could have joined it (the hold time is 5 s here).
		const started = Date.now();
		await fence.run(users[0]!, 1, () => s.insert(users[0]!, "lone"));
		expect(Date.now() - started).toBeLessThan(1000);
	});

	it("keeps a batch's writes apart for their callers: a failing one keeps what it wrote, a savepoint rolls back alone", async () => {
		// The savepoint's rollback takes back its own row only, not the write interleaved meanwhile.
		expect(await savepointAmongOthers(s)).toEqual({
			statuses: ["rejected: failed after writing", "fulfilled", "fulfilled"],
			rows: [["before"], ["after", "outside"], ["interleaved"]]
		});
	});

	it("answers the others within the hold time while a slow write goes on in its own transaction", async () => {
		const fence = s.fence({ batchHoldMs: 50 });
		const [slowUser, fastUser] = await Promise.all([s.owned(), s.owned()]);
		const started = Date.now();
		let fastAt = 0;
		const slow = fence.run(slowUser, 1, async () => {
			await s.insert(slowUser, "first");
			await sleep(400);
			await s.insert(slowUser, "second");
			return Date.now() - started;
		});
		const fast = fence
			.run(fastUser, 1, async () => {
				await s.insert(fastUser, "fast");
			})
			.then(() => (fastAt = Date.now() - started));
		const [slowAt] = await Promise.all([slow, fast]);
		console.log(`fast write answered after ${fastAt} ms, slow one after ${slowAt} ms`);
		expect(fastAt).toBeLessThan(300);
		expect(slowAt).toBeGreaterThanOrEqual(400);
		expect(await s.tags(slowUser)).toEqual(["first", "second"]);
		expect(await s.tags(fastUser)).toEqual(["fast"]);
		expect(fence.batches.stats.left).toBe(1);
	});

	it("refuses what a write that left its batch does after a freeze: a write with nothing written is USER_MOVING, one half written is OUTCOME_UNKNOWN", async () => {
		const fence = s.fence({ batchHoldMs: 30 });
		const [halfUser, idleUser, fastUser] = await Promise.all([s.owned(), s.owned(), s.owned()]);
		const frozen = { done: false };
		const untilFrozen = async () => {
			while (!frozen.done) await sleep(10);
		};
		const results = Promise.allSettled([
			fence.run(halfUser, 1, async () => {
				await s.insert(halfUser, "before freeze");
				await untilFrozen();
				await s.insert(halfUser, "after freeze");
			}),
			fence.run(idleUser, 1, async () => {
				await untilFrozen();
				await s.insert(idleUser, "after freeze");
			}),
			fence.run(fastUser, 1, () => s.insert(fastUser, "fast"))
		]);
		// The batch commits once the slow writes left it; the freezes then wait for nothing.
		await sleep(150);
		await s.freeze(halfUser);
		await s.freeze(idleUser);
		frozen.done = true;
		const [half, idle, fast] = await results;
		expect(typeOf((half as PromiseRejectedResult).reason)).toBe("OUTCOME_UNKNOWN");
		expect(typeOf((idle as PromiseRejectedResult).reason)).toBe("USER_MOVING");
		expect(fast.status).toBe("fulfilled");
		// Nothing committed after the freeze; what committed before it is there for the copy.
		expect(await s.tags(halfUser)).toEqual(["before freeze"]);
		expect(await s.tags(idleUser)).toEqual([]);
	});

	it("lets a freeze wait for the whole batch in flight, and refuses every write after it", async () => {
		const fence = s.fence({ batchHoldMs: 5000 });
		const [mover, other] = await Promise.all([s.owned(), s.owned()]);
		let inserted!: () => void;
		const batchHoldsTheRow = new Promise<void>(r => (inserted = r));
		let handlerDoneAt = 0;
		const inFlight = [
			fence.run(mover, 1, async () => {
				await s.insert(mover, "in flight");
				inserted();
				await sleep(300);
				handlerDoneAt = Date.now();
			}),
			fence.run(other, 1, () => s.insert(other, "same batch"))
		];
		await batchHoldsTheRow;
		await s.freeze(mover);
		// The freeze got the row only once the batch, its slow write included, was over.
		expect(handlerDoneAt).toBeGreaterThan(0);
		await Promise.all(inFlight);
		await expect(fence.run(mover, 1, () => s.insert(mover, "late"))).rejects.toMatchObject({ type: "USER_MOVING" });
		expect(await s.tags(mover)).toEqual(["in flight"]);
		expect(await s.tags(other)).toEqual(["same batch"]);
	});

	it("runs every write of a deadlock's victim batch again, so each is applied once", async () => {
		const fence = s.fence({ batchHoldMs: 5000 });
		const [u1, u2, u3] = await Promise.all([s.owned(), s.owned(), s.owned()]);
		const runs = { crossing: 0, innocent: 0, other: 0 };
		// One batch: a write taking a then b, and an innocent write beside it.
		const first = Promise.allSettled([
			fence.run(u1, 1, async () => {
				runs.crossing++;
				await bump("a");
				await sleep(200);
				await bump("b");
			}),
			fence.run(u2, 1, async () => {
				runs.innocent++;
				await s.insert(u2, "innocent");
			})
		]);
		await sleep(50);
		// Another batch takes b then a. It has written more, so InnoDB picks the first batch as the victim.
		const second = fence.run(u3, 1, async () => {
			runs.other++;
			for (let i = 0; i < 20; i++) await s.insert(u3, `heavy ${i}`);
			await bump("b");
			await sleep(200);
			await bump("a");
		});
		const results = [...(await first), ...(await Promise.allSettled([second]))];
		expect(results.map(r => r.status)).toEqual(["fulfilled", "fulfilled", "fulfilled"]);
		console.log(`crossing batches: handlers ran ${JSON.stringify(runs)}, counters ${JSON.stringify(await counters())}`);
		expect(await counters()).toEqual([2, 2]);
		// The innocent write was rolled back with its batch and ran again: its row is there once.
		expect(runs).toEqual({ crossing: 2, innocent: 2, other: 1 });
		expect(await s.tags(u2)).toEqual(["innocent"]);
		expect(await s.tags(u3)).toHaveLength(20);
	});

	it("sends nothing more for a write that swallowed its deadlock (it would commit outside the fence) and runs it again", async () => {
		const fence = s.fence({ batchHoldMs: 5000 });
		const [u1, u3] = await Promise.all([s.owned(), s.owned()]);
		await s.db.updateTable("batch_counters").set({ n: 0 }).execute();
		let swallowed = 0;
		const careless = fence.run(u1, 1, async () => {
			await bump("a");
			await sleep(200);
			await bump("b").catch(() => void swallowed++);
			// After a deadlock the database is no longer in the transaction: this would autocommit, unfenced.
			await s.insert(u1, "after the deadlock").catch(() => void swallowed++);
			return "ok";
		});
		await sleep(50);
		const heavy = fence.run(u3, 1, async () => {
			for (let i = 0; i < 20; i++) await s.insert(u3, `heavy ${i}`);
			await bump("b");
			await sleep(200);
			await bump("a");
		});
		await expect(careless).resolves.toBe("ok");
		await heavy;
		expect(swallowed).toBe(2);
		expect(await counters()).toEqual([2, 2]);
		expect(await s.tags(u1)).toEqual(["after the deadlock"]);
	});

	it("answers WRITE_CONFLICT, with nothing of it applied, to a write the database picks as a deadlock's victim on every run", async () => {
		const fence = s.fence({ batchHoldMs: 5000 });
		const u1 = await s.owned();
		await s.db.updateTable("batch_counters").set({ n: 0 }).execute();
		await sql`create table if not exists batch_ballast (n integer not null)`.execute(s.db);
		let runs = 0;
		const partners: Promise<void>[] = [];
		// Outside the fence: takes b, then a, after writing enough to be the heavier side, so InnoDB rolls the fenced write back.
		const heavyCrossing = async () => {
			const conn = await createConnection({ uri: stores.sql });
			try {
				await conn.query("start transaction");
				await conn.query(`insert into batch_ballast (n) values ${Array.from({ length: 50 }, (_, i) => `(${i})`).join(",")}`);
				await conn.query("update batch_counters set n = n + 1 where name = 'b'");
				await sleep(100);
				await conn.query("update batch_counters set n = n + 1 where name = 'a'");
				await conn.query("commit");
			} finally {
				await conn.end();
			}
		};
		const write = fence.run(u1, 1, async () => {
			runs++;
			await bump("a");
			partners.push(heavyCrossing());
			await sleep(200);
			await bump("b");
			await s.insert(u1, "never");
		});
		await expect(write).rejects.toMatchObject({ type: "WRITE_CONFLICT", code: 503, data: { userId: u1, retryAfter: 1 } });
		await Promise.all(partners);
		console.log(`a write that lost every deadlock: ${runs} runs, then WRITE_CONFLICT`);
		expect(runs).toBeGreaterThan(1);
		// Only the partners' increments are there: every run of the fenced write was rolled back.
		expect(await counters()).toEqual([runs, runs]);
		expect(await s.tags(u1)).toEqual([]);
	});

	it("answers every write of a batch whose COMMIT failed with OUTCOME_UNKNOWN", async () => {
		const fence = s.fence({ batchHoldMs: 5000 });
		const [u1, u2] = await Promise.all([s.owned(), s.owned()]);
		const results = await Promise.allSettled([
			fence.run(u1, 1, async () => {
				await s.insert(u1, "lost");
				// The batch's connection dies before its COMMIT.
				const { rows } = await sql<{ id: number }>`select connection_id() as id`.execute(s.db);
				const admin = await createConnection({ uri: stores.sql });
				await admin.query(`kill ${Number(rows[0]!.id)}`);
				await admin.end();
			}),
			fence.run(u2, 1, () => s.insert(u2, "lost too"))
		]);
		expect(results.map(r => r.status)).toEqual(["rejected", "rejected"]);
		for (const r of results) expect((r as PromiseRejectedResult).reason).toMatchObject({ type: "OUTCOME_UNKNOWN", code: 504 });
		expect(await s.tags(u1)).toEqual([]);
		expect(await s.tags(u2)).toEqual([]);
		// The fence goes on with other connections.
		await fence.run(u1, 1, () => s.insert(u1, "after"));
		expect(await s.tags(u1)).toEqual(["after"]);
	});
});
