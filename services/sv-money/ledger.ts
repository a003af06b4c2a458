import { randomInt } from "node:crypto";
import type { Kysely, RawBuilder } from "kysely";
import { sql } from "kysely";
import type { SqlDialectName } from "../../regions/stores/sql.ts";
import { isDuplicateKey } from "../../regions/stores/sql.ts";
import { InsufficientFundsError, WalletFrozenError } from "./errors.ts";

/**
 * The ledger's statements, on whatever transaction the caller's write is in. Balances change only
 * by relative, guarded updates (`balance = balance - ?` where enough is available), so writes of
 * one batch interleaving on one connection never read a balance and write back a stale one. Every
 * change of a balance is written together with its entry, and each transfer's entries sum to zero.
 */

export type SystemKind = "issuance" | "fees" | "in-transit" | "suspense";
export type EntryKind = "transfer" | "refund" | "adjustment" | "move-out" | "move-in";

/**
 * A system account is split over slots, picked at random per posting: every cross-region transfer
 * touches in-transit, and one row would serialise a region's writers on its lock. Reconciliation
 * and balances add the slots up.
 */
export const SYSTEM_SLOTS = 8;

export const systemOwner = (kind: SystemKind, slot = randomInt(SYSTEM_SLOTS)) => `sys:${kind}:${slot}`;
export const SYSTEM_PREFIX = "sys:";

export interface EntryRow {
	transfer_id: string;
	account_owner: string;
	currency: string;
	kind: EntryKind;
	amount: bigint;
	created_at: number;
}

export class Ledger {
	readonly db: Kysely<any>;
	readonly dialect: SqlDialectName;

	constructor(db: Kysely<any>, dialect: SqlDialectName) {
		this.db = db;
		this.dialect = dialect;
	}

	/** A 64-bit column read as a decimal string: drivers hand big integers back as floats otherwise. */
	text(column: string): RawBuilder<string> {
		return sql<string>`cast(${sql.ref(column)} as ${sql.raw(this.dialect === "mysql" ? "char" : "text")})`;
	}

	/** Takes `amount` from a user's available balance, unless that is short or the wallet frozen (but `evenIfFrozen`): false then, and nothing changed. */
	async debitUser(owner: string, currency: string, amount: bigint, evenIfFrozen = false): Promise<boolean> {
		const r = evenIfFrozen
			? await sql`update money_accounts set balance = balance - ${amount}
				where owner_id = ${owner} and currency = ${currency} and balance - held >= ${amount}`.execute(this.db)
			: await sql`update money_accounts set balance = balance - ${amount}
				where owner_id = ${owner} and currency = ${currency} and balance - held >= ${amount}
				and not exists (select 1 from money_wallets w where w.user_id = ${owner} and w.frozen = 1)`.execute(this.db);
		return Number(r.numAffectedRows ?? 0) === 1;
	}

	/** Why `debitUser` (or `holdFunds`) changed nothing: the wallet is frozen, or too little is available. */
	async refusal(owner: string, currency: string, amount: bigint, evenIfFrozen = false): Promise<Error> {
		if (!evenIfFrozen && (await this.isFrozen(owner))) return new WalletFrozenError(owner);
		const row = await this.db
			.selectFrom("money_accounts")
			.select(this.text("balance").as("balance"))
			.select(this.text("held").as("held"))
			.where("owner_id", "=", owner)
			.where("currency", "=", currency)
			.executeTakeFirst();
		const available = row ? BigInt(row.balance) - BigInt(row.held) : 0n;
		return new InsufficientFundsError(currency, available.toString(), amount.toString());
	}

	async isFrozen(userId: string): Promise<boolean> {
		const row = await this.db.selectFrom("money_wallets").select("frozen").where("user_id", "=", userId).executeTakeFirst();
		return Number(row?.frozen ?? 0) === 1;
	}

	/**
	 * Adds `amount` to a user's balance, opening the account on first use. A frozen wallet receives
	 * nothing (false), unless `evenIfFrozen`: a refund or an operator's adjustment.
	 */
	async creditUser(owner: string, currency: string, amount: bigint, evenIfFrozen = false): Promise<boolean> {
		for (;;) {
			const r = evenIfFrozen
				? await sql`update money_accounts set balance = balance + ${amount} where owner_id = ${owner} and currency = ${currency}`.execute(this.db)
				: await sql`update money_accounts set balance = balance + ${amount} where owner_id = ${owner} and currency = ${currency}
					and not exists (select 1 from money_wallets w where w.user_id = ${owner} and w.frozen = 1)`.execute(this.db);
			if (Number(r.numAffectedRows ?? 0) === 1) return true;
			if (!evenIfFrozen && (await this.isFrozen(owner))) return false;
			if (await this.open(owner, currency, "user", amount)) return true;
		}
	}

	/** Moves a system account by `delta` (either sign: only system accounts go negative). */
	async system(owner: string, currency: string, delta: bigint): Promise<void> {
		const kind = owner.split(":")[1]!;
		for (;;) {
			const r = await sql`update money_accounts set balance = balance + ${delta} where owner_id = ${owner} and currency = ${currency}`.execute(this.db);
			if (Number(r.numAffectedRows ?? 0) === 1 || (await this.open(owner, currency, kind, delta))) return;
		}
	}

	/** Opens an account holding `balance`; false when a concurrent write opened it first (update it then). */
	private async open(owner: string, currency: string, kind: string, balance: bigint): Promise<boolean> {
		try {
			await this.db.insertInto("money_accounts").values({ owner_id: owner, currency, kind, balance, held: 0n, created_at: Date.now() }).execute();
			return true;
		} catch (err) {
			if (isDuplicateKey(err)) return false;
			throw err;
		}
	}

	/** Sets `amount` of a user's available balance aside for a hold; false (nothing changed) when short or frozen. */
	async holdFunds(owner: string, currency: string, amount: bigint): Promise<boolean> {
		const r = await sql`update money_accounts set held = held + ${amount}
			where owner_id = ${owner} and currency = ${currency} and balance - held >= ${amount}
			and not exists (select 1 from money_wallets w where w.user_id = ${owner} and w.frozen = 1)`.execute(this.db);
		return Number(r.numAffectedRows ?? 0) === 1;
	}

	/** Gives back what a hold set aside. */
	async releaseFunds(owner: string, currency: string, amount: bigint): Promise<void> {
		await sql`update money_accounts set held = held - ${amount} where owner_id = ${owner} and currency = ${currency}`.execute(this.db);
	}

	/** An operator's freeze: the wallet neither pays nor receives (refunds and adjustments still reach it). */
	async setFrozen(userId: string, frozen: boolean, reason: string | null): Promise<void> {
		const values = { frozen: frozen ? 1 : 0, reason, updated_at: Date.now() };
		const r = await this.db.updateTable("money_wallets").set(values).where("user_id", "=", userId).executeTakeFirst();
		if (Number(r.numUpdatedRows) > 0) return;
		try {
			await this.db
				.insertInto("money_wallets")
				.values({ user_id: userId, ...values })
				.execute();
		} catch (err) {
			// The row was there with these values already (counted as unchanged).
			if (!isDuplicateKey(err)) throw err;
		}
	}

	async entries(rows: EntryRow[]): Promise<void> {
		await this.db.insertInto("money_entries").values(rows).execute();
	}
}
