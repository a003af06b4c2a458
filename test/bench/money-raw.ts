import { createPool } from "mysql2";
import type { Pool, ResultSetHeader, RowDataPacket } from "mysql2/promise";
import { newUserId } from "../../regions/directory/entries.ts";
import { migrate } from "../../regions/stores/index.ts";
import type { SqlStore } from "../../regions/stores/sql.ts";
import { openSqlStore } from "../../regions/stores/sql.ts";
import { Ledger, systemOwner } from "../../services/sv-money/ledger.ts";
import { migrations } from "../../services/sv-money/migrations.ts";
import type { Reconciliation } from "../../services/sv-money/reconciliation.ts";
import { reconcile } from "../../services/sv-money/reconciliation.ts";

/**
 * bench:money's baseline, the physical limit of the design: sv-money's own tables on the same
 * MariaDB, and one transaction per transfer straight on a mysql2 pool (as large as a region
 * node's, READ COMMITTED as there): lock both account rows in id order, debit the payer unless
 * short, credit the payee, insert the two entries, commit. No broker, no fence, no idempotency
 * record: what is left is the database's own cost of a transfer.
 */

export interface RawLedger {
	readonly accounts: string[];
	transfer(payer: string, payee: string, currency: string, amount: bigint): Promise<void>;
	/** sv-money's reconciliation of these tables, and the entries they hold. */
	check(): Promise<{ reconciliation: Reconciliation; entries: number }>;
	close(): Promise<void>;
}

const SEED_ROWS_PER_INSERT = 500;

/** A fresh ledger of `count` accounts of `seed` each in `currency`, issued from the issuance account (entries included, so it reconciles). */
export async function openRawLedger(url: string, opts: { count: number; seed: bigint; currency: string; poolSize: number }): Promise<RawLedger> {
	const store: SqlStore = await openSqlStore(url);
	let pool: Pool | undefined;
	try {
		await migrate(store.db, "sv-money", migrations);
		const accounts = Array.from({ length: opts.count }, () => newUserId());
		const now = Date.now();
		const issuance = systemOwner("issuance", 0);
		const total = opts.seed * BigInt(opts.count);
		await store.db
			.insertInto("money_accounts")
			.values({ owner_id: issuance, currency: opts.currency, kind: "issuance", balance: -total, held: 0n, created_at: now })
			.execute();
		await store.db
			.insertInto("money_entries")
			.values({ transfer_id: "seed", account_owner: issuance, currency: opts.currency, kind: "adjustment", amount: -total, created_at: now })
			.execute();
		for (let i = 0; i < accounts.length; i += SEED_ROWS_PER_INSERT) {
			const slice = accounts.slice(i, i + SEED_ROWS_PER_INSERT);
			await store.db
				.insertInto("money_accounts")
				.values(slice.map(owner_id => ({ owner_id, currency: opts.currency, kind: "user", balance: opts.seed, held: 0n, created_at: now })))
				.execute();
			await store.db
				.insertInto("money_entries")
				.values(
					slice.map(owner => ({ transfer_id: "seed", account_owner: owner, currency: opts.currency, kind: "adjustment", amount: opts.seed, created_at: now }))
				)
				.execute();
		}
		const core = createPool({ uri: url, connectionLimit: opts.poolSize, connectTimeout: 5000, supportBigNumbers: true, bigNumberStrings: false });
		core.on("connection", conn => conn.query("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"));
		pool = core.promise();
		const raw = pool;
		return {
			accounts,
			async transfer(payer, payee, currency, amount) {
				const conn = await raw.getConnection();
				try {
					await conn.query("begin");
					try {
						// Both rows in id order, so two transfers between the same accounts never deadlock.
						const [first, second] = [payer, payee].sort();
						await conn.query("select balance from money_accounts where currency = ? and owner_id in (?, ?) order by owner_id for update", [
							currency,
							first,
							second
						]);
						const [debit] = await conn.query<ResultSetHeader>(
							"update money_accounts set balance = balance - ? where owner_id = ? and currency = ? and balance - held >= ?",
							[amount, payer, currency, amount]
						);
						if (debit.affectedRows !== 1) throw Object.assign(new Error(`${payer} has less than ${amount} ${currency}`), { type: "INSUFFICIENT_FUNDS" });
						await conn.query("update money_accounts set balance = balance + ? where owner_id = ? and currency = ?", [amount, payee, currency]);
						const id = crypto.randomUUID();
						const at = Date.now();
						await conn.query(
							"insert into money_entries (transfer_id, account_owner, currency, kind, amount, created_at) values (?, ?, ?, 'transfer', ?, ?), (?, ?, ?, 'transfer', ?, ?)",
							[id, payer, currency, -amount, at, id, payee, currency, amount, at]
						);
						await conn.query("commit");
					} catch (err) {
						await conn.query("rollback").catch(() => undefined);
						throw err;
					}
				} finally {
					conn.release();
				}
			},
			async check() {
				const reconciliation = await reconcile(new Ledger(store.db, "mysql"), "baseline");
				const [rows] = await raw.query<({ n: number | string } & RowDataPacket)[]>("select count(*) as n from money_entries");
				return { reconciliation, entries: Number(rows[0]!.n) };
			},
			async close() {
				await raw.end();
				await store.close();
			}
		};
	} catch (err) {
		await pool?.end();
		await store.close();
		throw err;
	}
}
