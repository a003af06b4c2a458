import { sql } from "kysely";
import type { Ledger } from "./ledger.ts";

/**
 * The proof a region's ledger is whole: every account's balance is the sum of its entries, every
 * currency's accounts (users' and the system's) sum to zero, no user balance or hold is negative,
 * and no entry lacks its account. Each check is one statement, so it reads one consistent state.
 */

export interface Reconciliation {
	region: string;
	ok: boolean;
	checkedAt: string;
	accounts: number;
	currencies: { currency: string; sum: string; ok: boolean }[];
	mismatches: { account: string; currency: string; balance: string; entries: string }[];
	negative: { account: string; currency: string; balance: string }[];
}

export async function reconcile(ledger: Ledger, region: string): Promise<Reconciliation> {
	const { db } = ledger;
	const cast = sql.raw(ledger.dialect === "mysql" ? "char" : "text");
	const mismatched = await sql<{ account: string; currency: string; balance: string; entries: string }>`
		select a.owner_id as account, a.currency as currency, cast(a.balance as ${cast}) as balance, cast(coalesce(s.total, 0) as ${cast}) as entries
		from money_accounts a left join (select account_owner, currency, sum(amount) as total from money_entries group by account_owner, currency) s
			on s.account_owner = a.owner_id and s.currency = a.currency
		where a.balance <> coalesce(s.total, 0)
		union all
		select e.account_owner, e.currency, '0', cast(sum(e.amount) as ${cast}) from money_entries e
		where not exists (select 1 from money_accounts a where a.owner_id = e.account_owner and a.currency = e.currency)
		group by e.account_owner, e.currency`.execute(db);
	const sums = await sql<{ currency: string; total: string; n: number | string }>`
		select currency, cast(sum(balance) as ${cast}) as total, count(*) as n from money_accounts group by currency order by currency`.execute(db);
	const negative = await sql<{ account: string; currency: string; balance: string }>`
		select owner_id as account, currency, cast(balance as ${cast}) as balance from money_accounts
		where kind = 'user' and (balance < 0 or held < 0 or held > balance)`.execute(db);
	const currencies = sums.rows.map(r => ({ currency: r.currency, sum: BigInt(r.total).toString(), ok: BigInt(r.total) === 0n }));
	return {
		region,
		ok: mismatched.rows.length === 0 && negative.rows.length === 0 && currencies.every(c => c.ok),
		checkedAt: new Date().toISOString(),
		accounts: sums.rows.reduce((n, r) => n + Number(r.n), 0),
		currencies,
		mismatches: mismatched.rows.map(r => ({ ...r, balance: BigInt(r.balance).toString(), entries: BigInt(r.entries).toString() })),
		negative: negative.rows.map(r => ({ ...r, balance: BigInt(r.balance).toString() }))
	};
}
