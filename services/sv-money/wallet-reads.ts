import { Errors } from "moleculer";
import type { Ledger } from "./ledger.ts";

/** What a user reads of a wallet: balances per currency, and the entries, newest first. */

export interface WalletView {
	userId: string;
	frozen: boolean;
	balances: { currency: string; balance: string; available: string; pending: string }[];
}

export interface EntryView {
	id: string;
	transferId: string;
	currency: string;
	amount: string;
	kind: string;
	counterparty: string | null;
	memo: string | null;
	createdAt: string;
}

export async function walletView(ledger: Ledger, userId: string): Promise<WalletView> {
	const accounts = await ledger.db
		.selectFrom("money_accounts")
		.select("currency")
		.select(ledger.text("balance").as("balance"))
		.select(ledger.text("held").as("held"))
		.where("owner_id", "=", userId)
		.orderBy("currency")
		.execute();
	return {
		userId,
		frozen: await ledger.isFrozen(userId),
		balances: accounts.map(a => ({
			currency: a.currency,
			balance: BigInt(a.balance).toString(),
			available: (BigInt(a.balance) - BigInt(a.held)).toString(),
			pending: BigInt(a.held).toString()
		}))
	};
}

/** A cursor is the last listed entry's id, opaque to clients. */
const encodeCursor = (id: string) => Buffer.from(`e${id}`).toString("base64url");

function decodeCursor(cursor: string): bigint {
	const raw = Buffer.from(cursor, "base64url").toString();
	if (!/^e[0-9]{1,19}$/.test(raw))
		throw new Errors.ValidationError("Parameters validation error!", "VALIDATION_ERROR", [{ field: "cursor", message: "is not a cursor this API gave" }]);
	return BigInt(raw.slice(1));
}

export async function entriesPage(
	ledger: Ledger,
	userId: string,
	opts: { currency?: string; cursor?: string; limit: number }
): Promise<{ items: EntryView[]; nextCursor: string | null }> {
	let q = ledger.db
		.selectFrom("money_entries as e")
		.leftJoin("money_transfers as t", join => join.onRef("t.owner_id", "=", "e.account_owner").onRef("t.id", "=", "e.transfer_id"))
		.select(["e.transfer_id", "e.currency", "e.kind", "e.created_at", "t.from_id", "t.to_id", "t.memo"])
		.select(ledger.text("e.id").as("id"))
		.select(ledger.text("e.amount").as("amount"))
		.where("e.account_owner", "=", userId);
	if (opts.currency) q = q.where("e.currency", "=", opts.currency);
	if (opts.cursor) q = q.where("e.id", "<", decodeCursor(opts.cursor));
	const rows = await q
		.orderBy("e.id", "desc")
		.limit(opts.limit + 1)
		.execute();
	const page = rows.slice(0, opts.limit);
	return {
		items: page.map(r => {
			const other = r.from_id === userId ? r.to_id : r.from_id;
			return {
				id: r.id,
				transferId: r.transfer_id,
				currency: r.currency,
				amount: BigInt(r.amount).toString(),
				kind: r.kind,
				counterparty: other == null ? null : other.startsWith("sys:") ? `system:${other.split(":")[1]}` : other,
				memo: r.memo ?? null,
				createdAt: new Date(Number(r.created_at)).toISOString()
			};
		}),
		nextCursor: rows.length > opts.limit ? encodeCursor(page[page.length - 1]!.id) : null
	};
}
