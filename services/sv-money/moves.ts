import type { Ledger } from "./ledger.ts";
import { entry } from "./payments.ts";

/**
 * A user's wallet as a move carries it: accounts, transfers (with their idempotency keys),
 * entries, holds, and one bundle of the wallet's state and its outbox messages not sent yet. The
 * bundle counts as one row whatever the relay sends meanwhile, so the mover's counts agree.
 *
 * A region's accounts sum to zero per currency; a user's balance leaving or arriving would break
 * that, so each region posts it against its in-transit account: +balance where the user's rows
 * are removed (the old home, or a retried import's leftovers), −balance where they are added. The
 * regions' in-transit accounts together still sum to what is in flight.
 */

/** The in-transit slot moves post to (any slot would do: reconciliation adds them up). */
const MOVES_TRANSIT = "sys:in-transit:0";
const MOVE_ENTRY_ID = (userId: string) => `mv:${userId}`;

const AMOUNTS: Record<string, string[]> = { a: ["balance", "held"], t: ["amount"], e: ["amount"], h: ["amount"] };
const TABLES = { a: "money_accounts", t: "money_transfers", e: "money_entries", h: "money_holds" } as const;
const OWNER = { a: "owner_id", t: "owner_id", e: "account_owner", h: "owner_id" } as const;
type Part = keyof typeof TABLES;
/** Rows per insert statement of an import. */
const IMPORT_CHUNK = 200;

interface ExportedRow {
	t: Part | "w";
	r: Record<string, unknown>;
}

export class WalletMoves {
	private readonly ledger: Ledger;

	constructor(ledger: Ledger) {
		this.ledger = ledger;
	}

	private rowsOf(part: Part, userId: string) {
		const { ledger } = this;
		let q = ledger.db.selectFrom(TABLES[part]).selectAll().where(OWNER[part], "=", userId);
		for (const column of AMOUNTS[part]!) q = q.select(ledger.text(column).as(column));
		if (part === "e") q = q.orderBy("id");
		return q.execute();
	}

	async export(userId: string): Promise<ExportedRow[]> {
		const out: ExportedRow[] = [];
		for (const part of ["a", "t", "e", "h"] as const)
			for (const row of await this.rowsOf(part, userId)) {
				if (part === "e") delete row.id;
				out.push({ t: part, r: row });
			}
		const wallet = await this.ledger.db.selectFrom("money_wallets").selectAll().where("user_id", "=", userId).executeTakeFirst();
		const outbox = await this.ledger.db
			.selectFrom("money_outbox")
			.select(["channel", "msg_key", "region", "payload", "created_at"])
			.where("owner_id", "=", userId)
			.orderBy("id")
			.execute();
		if (out.length || wallet) out.push({ t: "w", r: { wallet: wallet ?? null, outbox } });
		return out;
	}

	async count(userId: string): Promise<number> {
		let n = 0;
		for (const part of ["a", "t", "e", "h"] as const) {
			const r = await this.ledger.db
				.selectFrom(TABLES[part])
				.select(eb => eb.fn.countAll().as("n"))
				.where(OWNER[part], "=", userId)
				.executeTakeFirst();
			n += Number(r?.n ?? 0);
		}
		const wallet = await this.ledger.db.selectFrom("money_wallets").select("user_id").where("user_id", "=", userId).executeTakeFirst();
		return n + (n > 0 || wallet ? 1 : 0);
	}

	/** Removes the user's wallet from this region, its balances posted to in-transit; answers the rows removed as `count` counts them. */
	async remove(userId: string): Promise<number> {
		const { ledger } = this;
		const counted = await this.count(userId);
		const now = Date.now();
		for (const account of await this.rowsOf("a", userId)) await this.post(userId, String(account.currency), BigInt(String(account.balance)), "move-out", now);
		for (const part of ["a", "t", "e", "h"] as const) await ledger.db.deleteFrom(TABLES[part]).where(OWNER[part], "=", userId).execute();
		await ledger.db.deleteFrom("money_wallets").where("user_id", "=", userId).execute();
		await ledger.db.deleteFrom("money_outbox").where("owner_id", "=", userId).execute();
		return counted;
	}

	/** Replaces whatever a retried import left with `rows`, their balances posted against in-transit. */
	async import(userId: string, rows: unknown[]): Promise<void> {
		const { ledger } = this;
		await this.remove(userId);
		const now = Date.now();
		const parts = new Map<Part, Record<string, unknown>[]>();
		for (const { t, r } of rows as ExportedRow[]) {
			if (t === "w") {
				const bundle = r as { wallet: Record<string, unknown> | null; outbox: Record<string, unknown>[] };
				if (bundle.wallet)
					await ledger.db
						.insertInto("money_wallets")
						.values({ ...bundle.wallet, user_id: userId })
						.execute();
				if (bundle.outbox.length)
					await ledger.db
						.insertInto("money_outbox")
						.values(bundle.outbox.map(message => ({ ...message, owner_id: userId, claimed_until: 0 })))
						.execute();
				continue;
			}
			const row: Record<string, unknown> = { ...r, [OWNER[t]]: userId };
			for (const column of AMOUNTS[t]!) row[column] = BigInt(String(row[column]));
			parts.set(t, [...(parts.get(t) ?? []), row]);
		}
		// Entries keep their order: a user's history is listed by their new ids.
		for (const [part, list] of parts)
			for (let i = 0; i < list.length; i += IMPORT_CHUNK)
				await ledger.db
					.insertInto(TABLES[part])
					.values(list.slice(i, i + IMPORT_CHUNK))
					.execute();
		for (const account of parts.get("a") ?? []) await this.post(userId, String(account.currency), -(account.balance as bigint), "move-in", now);
	}

	/** In-transit's side of a balance leaving (+) or arriving (−). */
	private async post(userId: string, currency: string, amount: bigint, kind: "move-out" | "move-in", at: number): Promise<void> {
		if (amount === 0n) return;
		await this.ledger.system(MOVES_TRANSIT, currency, amount);
		await this.ledger.entries([entry(MOVE_ENTRY_ID(userId), MOVES_TRANSIT, currency, amount, kind, at)]);
	}
}
