import type { Kysely } from "kysely";
import { sql } from "kysely";
import { createConnection } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StatementGroups } from "../../../../regions/stores/grouped-transaction.ts";
import { groupedTransaction, UncertainCommitError } from "../../../../regions/stores/grouped-transaction.ts";
import type { SqlStore } from "../../../../regions/stores/sql.ts";
import { openSqlStore } from "../../../../regions/stores/sql.ts";
import { cleanupRealStores, realStores, runId } from "../../../harness/real-servers.ts";
import { groupedTransactionContract } from "../../../unit/regions/stores/grouped-transaction-contract.ts";

/**
 * Grouped transactions on real MariaDB, where a group is one multi-statement query: the contract,
 * then what only a server connection can do: stay warm between transactions, die under one, fail
 * a commit whose outcome cannot be known, lose a deadlock.
 */
const stores = realStores(runId(), "cn-east");

groupedTransactionContract(
	"MariaDB",
	() => openSqlStore(stores.sql),
	store => store.close()
);

describe("grouped transactions on MariaDB connections", () => {
	let store: SqlStore;
	let db: Kysely<any>;
	const connectionId = (groups: StatementGroups) => groups.run([sql`select connection_id() as id`.compile(db)]).then(([r]) => Number(r!.rows[0]!.id));
	const killFromOutside = async (id: number) => {
		const admin = await createConnection({ uri: stores.sql });
		try {
			await admin.query(`kill ${id}`);
		} finally {
			await admin.end();
		}
	};
	const count = async () => Number((await db.selectFrom("grouped_counts").select(sql<number>`count(*)`.as("n")).executeTakeFirstOrThrow()).n);

	beforeAll(async () => {
		store = await openSqlStore(stores.sql);
		db = store.db;
		await db.schema
			.createTable("grouped_counts")
			.addColumn("k", "varchar(16)", c => c.primaryKey())
			.addColumn("n", "integer", c => c.notNull())
			.execute();
	});
	afterAll(async () => {
		await store?.close();
		await cleanupRealStores({ ...stores, redis: undefined });
	});

	it("takes several statements a query only from grouped transactions: the store's query builder refuses them", async () => {
		const err = await sql`select 1; drop table grouped_counts`.execute(db).catch(e => e);
		expect((err as { code?: string }).code).toBe("ER_PARSE_ERROR");
		expect(await count()).toBe(0);
	});

	it("sends a warm connection's first group as the transaction starts, not after the event loop's next turn", async () => {
		await groupedTransaction(db, async (_trx, groups) => connectionId(groups));
		const started = performance.now();
		const slept = groupedTransaction(db, async (_trx, groups) => groups.run([sql`select sleep(0.2)`.compile(db)]));
		// The event loop is held past the server's sleep: a group still waiting for its connection leaves only after it.
		while (performance.now() - started < 300);
		const unblocked = performance.now();
		await slept;
		expect(performance.now() - unblocked).toBeLessThan(100);
	});

	it("keeps a connection warm for the next transaction, and replaces one that died meanwhile", async () => {
		const first = await groupedTransaction(db, async (_trx, groups) => connectionId(groups));
		const second = await groupedTransaction(db, async (_trx, groups) => connectionId(groups));
		expect(second).toBe(first);
		await killFromOutside(second);
		await new Promise(r => setTimeout(r, 200));
		const third = await groupedTransaction(db, async (_trx, groups) => {
			await groups.runAndCommit([db.insertInto("grouped_counts").values({ k: "after-kill", n: 1 }).compile()]);
			return connectionId(groups).catch(() => -1);
		}).catch(e => e);
		expect(third).not.toBe(first);
		expect(await count()).toBe(1);
	});

	it("reports a commit whose connection died under it as uncertain, not as failed or done", async () => {
		await db.deleteFrom("grouped_counts").execute();
		const err = await groupedTransaction(db, async (_trx, groups) => {
			const id = await connectionId(groups);
			await groups.run([db.insertInto("grouped_counts").values({ k: "lost", n: 1 }).compile()]);
			await killFromOutside(id);
			await groups.runAndCommit([db.insertInto("grouped_counts").values({ k: "lost-too", n: 1 }).compile()]);
		}).catch(e => e);
		expect(err).toBeInstanceOf(UncertainCommitError);
		// Here the server rolled it back as the connection went; the caller could not know that.
		expect(await count()).toBe(0);
		// The next transaction gets a working connection.
		await groupedTransaction(db, async (_trx, groups) => groups.runAndCommit([db.insertInto("grouped_counts").values({ k: "next", n: 1 }).compile()]));
		expect(await count()).toBe(1);
	});

	it("answers a deadlock lost in the committing group as a deadlock, with nothing applied", async () => {
		await db.deleteFrom("grouped_counts").execute();
		await db
			.insertInto("grouped_counts")
			.values([
				{ k: "x", n: 0 },
				{ k: "y", n: 0 }
			])
			.execute();
		const bump = (k: string) => sql`update grouped_counts set n = n + 1 where k = ${k}`.compile(db);
		let locked!: () => void;
		const bothLocked = new Promise<void>(r => {
			let n = 0;
			locked = () => ++n === 2 && r();
		});
		const cross = (a: string, b: string) =>
			groupedTransaction(db, async (_trx, groups) => {
				await groups.run([bump(a)]);
				locked();
				await bothLocked;
				await groups.runAndCommit([bump(b)]);
			}).then(
				() => "committed",
				e => (e as { errno?: number }).errno
			);
		const outcomes = await Promise.all([cross("x", "y"), cross("y", "x")]);
		expect(outcomes.sort()).toEqual([1213, "committed"].sort());
		const rows = await db.selectFrom("grouped_counts").select(["k", "n"]).orderBy("k").execute();
		expect(rows.map(r => Number(r.n))).toEqual([1, 1]);
	});
});
