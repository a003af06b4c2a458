import { randomBytes, randomUUID } from "node:crypto";
import type { Context, ServiceSchema } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dbMixin } from "../../../mixins/db.mixin.ts";
import type { KvNode } from "../../harness/kv-node.ts";
import { startKvNode } from "../../harness/kv-node.ts";
import { notesService } from "../../harness/notes.service.ts";
import { cleanupRealStores, deleteKvBucket, REAL, realStores, runId } from "../../harness/real-servers.ts";

/** A write that records a row, then fails: what it wrote stays, as it would without the fence. */
const failing: ServiceSchema = {
	name: "failing",
	mixins: [
		dbMixin({
			"0001_audit": {
				async up(db) {
					await db.schema
						.createTable("failing_audit")
						.addColumn("id", "varchar(36)", c => c.primaryKey())
						.addColumn("user_id", "varchar(26)")
						.execute();
				}
			}
		})
	],
	actions: {
		recordThenFail: {
			home: "userId",
			params: { userId: "string" },
			async handler(ctx: Context<{ userId: string }>) {
				await this.db.insertInto("failing_audit").values({ id: randomUUID(), user_id: ctx.params.userId }).execute();
				throw new Error("failed after recording");
			}
		}
	}
};

/** Two counters taken in the order a call names, with a pause between: two calls in opposite orders deadlock. */
let crossRuns = 0;
const crossing: ServiceSchema = {
	name: "crossing",
	mixins: [
		dbMixin({
			"0001_counters": {
				async up(db) {
					await db.schema
						.createTable("crossing_counters")
						.addColumn("name", "varchar(8)", c => c.primaryKey())
						.addColumn("n", "integer", c => c.notNull())
						.execute();
					await db
						.insertInto("crossing_counters")
						.values([
							{ name: "a", n: 0 },
							{ name: "b", n: 0 }
						])
						.execute();
				}
			}
		})
	],
	actions: {
		bump: {
			home: "userId",
			params: { userId: "string", first: "string", second: "string" },
			async handler(ctx: Context<{ userId: string; first: string; second: string }>) {
				crossRuns++;
				const bump = (name: string) =>
					(this as unknown as { db: any }).db
						.updateTable("crossing_counters")
						.set((eb: any) => ({ n: eb("n", "+", 1) }))
						.where("name", "=", name)
						.execute();
				await bump(ctx.params.first);
				await new Promise(r => setTimeout(r, 200));
				await bump(ctx.params.second);
				return { ok: true };
			}
		}
	}
};

/**
 * The write fence on real MariaDB: one region, NATS for the directory. A freeze waits for the
 * write in flight and stops the ones after it; concurrent moves' imports do not fail on each
 * other's locks; a failing write keeps what it recorded.
 */
const run = runId();
const bucket = `t-${run}-fence`;
const stores = realStores(run, "cn-east");
let kv: KvNode;

const call = <T = any>(action: string, params: unknown, opts?: object) => kv.node.broker.call<T, unknown>(action, params, opts);
const register = async (name: string) =>
	(await call<{ userId: string }>("sv-region.register", { identities: [{ kind: "username", value: `${name}-${run}` }], country: "JP" })).userId;
const rows = async (table: string, userId: string) =>
	(await kv.node.stores.sql.db.selectFrom(table).selectAll().where("user_id", "=", userId).execute()).length;

beforeAll(async () => {
	kv = await startKvNode({
		region: "cn-east",
		natsUrl: REAL.nats,
		bucket,
		namespacePrefix: `f${run}-`,
		blindIndexKey: randomBytes(32),
		schemas: [notesService, failing, crossing],
		stores
	});
	await kv.node.broker.waitForServices(["notes", "failing", "crossing"], 10_000);
});

afterAll(async () => {
	await kv?.stop();
	await cleanupRealStores(stores);
	await deleteKvBucket(bucket);
});

describe("the write fence on MariaDB", () => {
	it("lets a freeze wait for the write in flight, and refuses every write after it", async () => {
		const userId = await register("frozen");
		await call("notes.add", { userId, text: "first" });
		const slow = call("notes.add", { userId, text: "in flight", delayMs: 500 });
		await new Promise(r => setTimeout(r, 100));
		// As a move does: the directory marks the user moving, then the home's row is frozen.
		const entry = (await kv.node.directory.entry(userId))!;
		await kv.store.update(`user.${userId}`, { ...entry.value, state: "moving" }, entry.revision);
		const started = Date.now();
		await call("sv-region.handover", { region: "cn-east", userId, step: "freeze", epoch: 1, moveId: randomUUID() });
		const waited = Date.now() - started;
		console.log(`freeze waited ${waited} ms for the write in flight`);
		await expect(slow).resolves.toMatchObject({ region: "cn-east" });
		expect(waited).toBeGreaterThanOrEqual(300);
		expect(await rows("notes", userId)).toBe(2);
		await expect(call("notes.add", { userId, text: "late" })).rejects.toMatchObject({ type: "USER_MOVING", code: 503 });
		expect(await rows("notes", userId)).toBe(2);
	});

	it("imports many users' rows concurrently without a lock conflict reaching the mover", async () => {
		const users = await Promise.all(Array.from({ length: 16 }, (_, i) => register(`import-${i}`)));
		const moves = new Map(users.map(u => [u, randomUUID()]));
		for (const u of users) await call("sv-region.handover", { region: "cn-east", userId: u, step: "receive", epoch: 2, moveId: moves.get(u) });
		const payload = (u: string) =>
			Array.from({ length: 40 }, (_, i) => ({ id: randomUUID(), user_id: u, text: `r${i}`, region: "cn-east", created_at: Date.now() + i }));
		// Twice each, concurrently: a retried import replaces what the first wrote.
		const results = await Promise.allSettled(
			users.flatMap(u => [0, 1].map(() => call("notes.move.import", { userId: u, moveId: moves.get(u), rows: payload(u) })))
		);
		const failed = results.filter(r => r.status === "rejected").map(r => (r as PromiseRejectedResult).reason.message);
		expect(failed).toEqual([]);
		for (const u of users) expect(await rows("notes", u)).toBe(40);
	});

	it("refuses an import of a move the ownership row does not name, writing nothing", async () => {
		const userId = await register("stranger");
		await call("sv-region.handover", { region: "cn-east", userId, step: "receive", epoch: 2, moveId: randomUUID() });
		const rowsIn = [{ id: randomUUID(), user_id: userId, text: "stale", region: "cn-east", created_at: Date.now() }];
		await expect(call("notes.move.import", { userId, moveId: randomUUID(), rows: rowsIn })).rejects.toMatchObject({ type: "MOVE_FENCED", code: 409 });
		await expect(call("notes.move.delete", { userId, moveId: randomUUID() })).rejects.toMatchObject({ type: "MOVE_FENCED" });
		expect(await rows("notes", userId)).toBe(0);
	});

	it("runs a deadlock's victim again (its transaction was rolled back whole), so each write is applied once", async () => {
		const [u1, u2] = await Promise.all([register("cross-1"), register("cross-2")]);
		crossRuns = 0;
		const results = await Promise.allSettled([
			call("crossing.bump", { userId: u1, first: "a", second: "b" }),
			call("crossing.bump", { userId: u2, first: "b", second: "a" })
		]);
		expect(results.map(r => r.status)).toEqual(["fulfilled", "fulfilled"]);
		const counters = await kv.node.stores.sql.db.selectFrom("crossing_counters").selectAll().orderBy("name").execute();
		console.log(`two crossing writes: handlers ran ${crossRuns} times, counters ${JSON.stringify(counters)}`);
		expect(crossRuns).toBe(3);
		expect(counters.map(c => Number(c.n))).toEqual([2, 2]);
	});

	it("keeps what a write recorded before it failed", async () => {
		const userId = await register("failing");
		await expect(call("failing.recordThenFail", { userId })).rejects.toThrow(/failed after recording/);
		expect(await rows("failing_audit", userId)).toBe(1);
	});
});
