import type { CompiledQuery, Kysely } from "kysely";
import { sql } from "kysely";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { groupedTransaction } from "../../../../regions/stores/grouped-transaction.ts";
import type { SqlStore } from "../../../../regions/stores/sql.ts";
import { isDuplicateKey } from "../../../../regions/stores/sql.ts";

/**
 * The promises of regions/stores/grouped-transaction.ts, for each engine: a group's statements
 * run in order, each seeing the ones before; the first that fails stops the rest and leaves the
 * transaction open; `runAndCommit` commits only when all of its statements ran; a throw rolls
 * back every group. `open` gives a fresh store, `close` ends it.
 */
export function groupedTransactionContract(name: string, open: () => Promise<SqlStore>, close: (store: SqlStore) => Promise<void>): void {
	describe(`grouped transactions: ${name}`, () => {
		let store: SqlStore;
		let db: Kysely<any>;
		const put = (k: string, n: number): CompiledQuery => db.insertInto("grouped_items").values({ k, n }).compile();
		const get = (k: string): CompiledQuery => db.selectFrom("grouped_items").select("n").where("k", "=", k).compile();
		const items = async () => (await db.selectFrom("grouped_items").select(["k", "n"]).orderBy("k").execute()).map(r => `${r.k}=${Number(r.n)}`);

		beforeAll(async () => {
			store = await open();
			db = store.db;
			await db.schema
				.createTable("grouped_items")
				.addColumn("k", "varchar(16)", c => c.primaryKey())
				.addColumn("n", "integer", c => c.notNull())
				.execute();
		});
		afterAll(async () => close(store));
		beforeEach(async () => {
			await db.deleteFrom("grouped_items").execute();
		});

		it("runs a group's statements in order, each seeing the ones before it, and commits with the last group", async () => {
			const seen = await groupedTransaction(db, async (_trx, groups) => {
				const [, , read] = await groups.run([put("a", 1), put("b", 2), get("a")]);
				await groups.runAndCommit([put("c", 3)]);
				return read!.rows;
			});
			expect(seen.map(r => Number(r.n))).toEqual([1]);
			expect(await items()).toEqual(["a=1", "b=2", "c=3"]);
		});

		it("stops a group at its first failing statement and keeps the transaction open for the next group", async () => {
			await db.insertInto("grouped_items").values({ k: "taken", n: 0 }).execute();
			const err = await groupedTransaction(db, async (_trx, groups) => {
				await groups.run([put("a", 1)]);
				const failed = await groups.runAndCommit([put("taken", 1), put("after", 1)]).then(
					() => undefined,
					e => e
				);
				// Nothing after the failed statement ran, the COMMIT included: the caller goes on.
				await groups.runAndCommit([put("b", 2)]);
				return failed;
			});
			expect(isDuplicateKey(err)).toBe(true);
			expect(await items()).toEqual(["a=1", "b=2", "taken=0"]);
		});

		it("commits when the work returns without committing, and mixes statements one at a time with groups", async () => {
			await groupedTransaction(db, async (trx, groups) => {
				await trx.insertInto("grouped_items").values({ k: "one", n: 1 }).execute();
				const [read] = await groups.run([get("one")]);
				await trx
					.insertInto("grouped_items")
					.values({ k: "two", n: Number(read!.rows[0].n) + 1 })
					.execute();
			});
			expect(await items()).toEqual(["one=1", "two=2"]);
		});

		it("rolls back every group when the work throws", async () => {
			const err = await groupedTransaction(db, async (_trx, groups) => {
				await groups.run([put("a", 1), put("b", 2)]);
				throw new Error("changed its mind");
			}).catch(e => e);
			expect((err as Error).message).toBe("changed its mind");
			expect(await items()).toEqual([]);
		});

		it("answers writes with their counts and reads with their rows", async () => {
			const results = await groupedTransaction(db, async (_trx, groups) =>
				groups.runAndCommit([put("a", 1), put("b", 1), sql`update grouped_items set n = n + 1`.compile(db), get("b")])
			);
			expect(results.map(r => Number(r.numAffectedRows ?? 0))).toEqual([1, 1, 2, 0]);
			expect(results[3]!.rows.map(r => Number(r.n))).toEqual([2]);
		});
	});
}
