import type { Connection, RowDataPacket } from "mysql2/promise";
import type { Reconciliation } from "../../services/sv-money/reconciliation.ts";

/** bench:money's checks: the ledgers reconcile, and what they recorded is what was acknowledged. Each prints what it checked, or throws. */

export const count = async (db: Connection, query: string, params: unknown[] = []) => {
	const [rows] = await db.query<({ n: number | string } & RowDataPacket)[]>(query, params);
	return Number(rows[0]!.n);
};

export interface Tally {
	acked: number;
	/** Calls that failed: refused (nothing written) or of unknown outcome (written or not). */
	failed: number;
}

export const newTally = (): Tally => ({ acked: 0, failed: 0 });

export function tallied(tally: Tally, call: Promise<unknown>): Promise<void> {
	return call.then(
		() => void tally.acked++,
		err => {
			tally.failed++;
			throw err;
		}
	);
}

/** What was recorded against what was acknowledged: equal, or, when calls failed, at most that many more (a failure may have committed). */
export function expectCount(what: string, recorded: number, acked: number, failed: number): void {
	if (recorded < acked || recorded > acked + failed)
		throw new Error(`${what}: ${recorded} recorded, but ${acked} acknowledged${failed ? ` and ${failed} of unknown outcome` : ""}`);
	console.log(`  ok: ${what}: ${recorded} recorded = ${acked} acknowledged${failed ? ` + ${recorded - acked} of the ${failed} calls that failed` : ""}`);
}

export function expectEqual(what: string, actual: number | string, expected: number | string): void {
	if (actual !== expected) throw new Error(`${what}: ${actual}, expected ${expected}`);
	console.log(`  ok: ${what} = ${actual}`);
}

export function expectReconciled(r: Reconciliation): void {
	if (!r.ok) throw new Error(`reconciliation of ${r.region} FAILED: ${JSON.stringify(r)}`);
	console.log(`  ok: ${r.region} reconciles (${r.accounts} accounts; ${r.currencies.map(c => `${c.currency} sum ${c.sum}`).join(", ")})`);
}

/** The sum of a region's in-transit accounts: what it sent to (+) or received from (−) other regions and is not yet settled. */
export async function inTransit(db: Connection, currency: string): Promise<bigint> {
	const [rows] = await db.query<({ s: string | null } & RowDataPacket)[]>(
		"select cast(sum(balance) as char) as s from money_accounts where owner_id like 'sys:in-transit:%' and currency = ?",
		[currency]
	);
	return BigInt(rows[0]!.s ?? "0");
}
