import { randomUUID } from "node:crypto";
import type { Kysely } from "kysely";
import { WriteFence } from "../../regions/ownership/fence.ts";
import { handover } from "../../regions/ownership/handover.ts";
import { OWNERSHIP_MIGRATIONS, OwnershipRecords } from "../../regions/ownership/records.ts";
import { migrate } from "../../regions/stores/migrate.ts";
import { openSqlStore } from "../../regions/stores/sql.ts";

/**
 * A region database with the ownership table and a `batch_rows` table, and write fences driven
 * directly (no broker): tests of the fence choose which writes share a batch (those submitted
 * in the same tick do). The directory's origin is played by a set of moving users.
 */
export const FENCE_REGION = "cn-east";

export type FencedStore = Awaited<ReturnType<typeof openFencedStore>>;

export async function openFencedStore(url: string) {
	const store = await openSqlStore(url);
	const db: Kysely<any> = store.db;
	await migrate(db, "edgehome-ownership", OWNERSHIP_MIGRATIONS);
	const records = new OwnershipRecords(store);
	await db.schema
		.createTable("batch_rows")
		.addColumn("id", "varchar(36)", c => c.primaryKey())
		.addColumn("user_id", "varchar(26)", c => c.notNull())
		.addColumn("tag", "varchar(40)", c => c.notNull())
		.execute();
	const moving = new Set<string>();
	return {
		db,
		records,
		fence: (opts: { batchHoldMs?: number } = {}) =>
			new WriteFence({
				region: FENCE_REGION,
				records,
				authoritative: async userId => ({ region: FENCE_REGION, epoch: 1, state: moving.has(userId) ? "moving" : "active", pinned: false }),
				movingWaitMs: 100,
				...opts
			}),
		/** A user this region owns at epoch 1, as after its first fenced write. */
		async owned(): Promise<string> {
			const userId = randomUUID().replace(/-/g, "").slice(0, 26);
			await records.write(db, userId, { epoch: 1, state: "active", moveId: null }, undefined);
			return userId;
		},
		/** As a move does: the origin says moving, then the row is frozen. */
		async freeze(userId: string): Promise<void> {
			moving.add(userId);
			await handover(records, userId, "freeze", 1, randomUUID());
		},
		insert: (userId: string, tag: string) => db.insertInto("batch_rows").values({ id: randomUUID(), user_id: userId, tag }).execute(),
		tags: async (userId: string) =>
			(await db.selectFrom("batch_rows").select("tag").where("user_id", "=", userId).orderBy("tag").execute()).map(r => r.tag as string),
		close: () => store.close()
	};
}

export const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

/**
 * Three writes in one batch: one fails after writing, one opens a savepoint that rolls back while
 * another write interleaves. Answers each write's status and each user's rows.
 */
export async function savepointAmongOthers(s: FencedStore): Promise<{ statuses: string[]; rows: string[][] }> {
	const fence = s.fence({ batchHoldMs: 5000 });
	const [u1, u2, u3] = await Promise.all([s.owned(), s.owned(), s.owned()]);
	const results = await Promise.allSettled([
		fence.run(u1, 1, async () => {
			await s.insert(u1, "before");
			throw new Error("failed after writing");
		}),
		fence.run(u2, 1, async () => {
			await s.insert(u2, "outside");
			// Its own transaction inside: the batch is shared, so it goes on in a transaction of its own.
			await s.db
				.transaction()
				.execute(async trx => {
					await trx.insertInto("batch_rows").values({ id: randomUUID(), user_id: u2, tag: "inside" }).execute();
					await sleep(50);
					throw new Error("savepoint undone");
				})
				.catch(() => undefined);
			await s.insert(u2, "after");
		}),
		fence.run(u3, 1, async () => {
			await sleep(20);
			await s.insert(u3, "interleaved");
		})
	]);
	return {
		statuses: results.map(r => (r.status === "rejected" ? `rejected: ${(r.reason as Error).message}` : r.status)),
		rows: [await s.tags(u1), await s.tags(u2), await s.tags(u3)]
	};
}
