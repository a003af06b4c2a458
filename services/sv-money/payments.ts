import { randomUUID } from "node:crypto";
import { UserMovingError, WrongRegionError } from "../../regions/errors.ts";
import { isDuplicateKey } from "../../regions/stores/sql.ts";
import { WalletFrozenError } from "./errors.ts";
import { replayOf } from "./idempotency.ts";
import type { EntryRow, Ledger } from "./ledger.ts";
import { systemOwner } from "./ledger.ts";
import type { CreditMessage, SettleMessage } from "./outbox.ts";
import { addToOutbox, creditRequest, failedNotice, outboxRow, receivedNotice, SETTLE_CHANNEL } from "./outbox.ts";
import type { TransferRow } from "./views.ts";

/**
 * Transfers, as the payer's home writes them inside the payer's fenced write (one database
 * transaction, batched with the node's other writes by the fence):
 * - a payee homed here and active: debit, credit, both users' records and entries, `completed`;
 * - a payee elsewhere, or moving: debit the payer, credit in-transit, record `pending`, and put a
 *   credit message in the outbox. The payee's home applies it once (the payee's copy of the
 *   transfer is the unique key), or refuses it, and answers through its own outbox; the payer's
 *   home then completes the transfer, or refunds it from in-transit and marks it `failed`.
 * Every region's accounts sum to zero per currency at every commit.
 */

export interface PaymentDeps {
	ledger: Ledger;
	region: string;
	/** Runs `fn` with `userId`'s ownership row held in the current write's transaction too: throws a region error when this region may not write that user. */
	alsoFenced<T>(userId: string, fn: () => Promise<T>): Promise<T>;
}

export interface TransferRequest {
	payer: string;
	payee: string;
	/** Where the directory says the payee lives. */
	payeeHome: string;
	amount: bigint;
	currency: string;
	memo: string | null;
	idempotencyKey: string | null;
	requestHash: string | null;
}

export interface TransferOutcome {
	row: TransferRow;
	replayed: boolean;
	/** A message waits in the outbox. */
	queued: boolean;
}

/** Why a payee's home did not apply a credit: the payer is refunded with this as the reason. */
export type CreditRefusal = "RECIPIENT_NOT_FOUND" | "WALLET_FROZEN" | "CURRENCY_NOT_SUPPORTED";

export class Payments {
	private readonly deps: PaymentDeps;

	constructor(deps: PaymentDeps) {
		this.deps = deps;
	}

	private get ledger() {
		return this.deps.ledger;
	}

	/** The payer's own record of an earlier request with this key, if any (refused when the request differs). */
	async replay(payer: string, key: string | null, hash: string | null): Promise<TransferRow | undefined> {
		if (key === null || hash === null) return undefined;
		const row = (await this.ledger.db
			.selectFrom("money_transfers")
			.selectAll()
			.select(this.ledger.text("amount").as("amount"))
			.where("owner_id", "=", payer)
			.where("idempotency_key", "=", key)
			.executeTakeFirst()) as TransferRow | undefined;
		return row && replayOf(row, hash);
	}

	/** A new transfer (the caller checked `replay` first; a concurrent twin is caught by the key's uniqueness). */
	async transfer(req: TransferRequest): Promise<TransferOutcome> {
		const { ledger } = this;
		if (!(await ledger.debitUser(req.payer, req.currency, req.amount))) throw await ledger.refusal(req.payer, req.currency, req.amount);
		const home = req.payeeHome;
		if (home === this.deps.region) {
			const local = await this.deps
				.alsoFenced(req.payee, async () => {
					if (!(await ledger.creditUser(req.payee, req.currency, req.amount))) return "frozen" as const;
					return "credited" as const;
				})
				.catch(async err => {
					// Moved or moving since the lookup: the credit goes the asynchronous way, to the home the directory names then.
					if (err instanceof WrongRegionError || err instanceof UserMovingError) return "elsewhere" as const;
					throw await this.undo(req, err);
				});
			if (local === "frozen") throw await this.undo(req, new WalletFrozenError(req.payee));
			if (local === "credited") return this.record(req, this.deps.region, "completed");
		}
		return this.record(req, home, "pending");
	}

	/** Gives the payer back what `transfer` took before it failed, and answers the failure to throw. */
	private async undo(req: TransferRequest, err: unknown): Promise<unknown> {
		await this.ledger.creditUser(req.payer, req.currency, req.amount, true);
		return err;
	}

	/** The records and entries of a transfer whose debit (and local credit) is done. */
	private async record(req: TransferRequest, payeeRegion: string, status: "completed" | "pending"): Promise<TransferOutcome> {
		const { ledger } = this;
		const now = Date.now();
		const id = randomUUID();
		const local = status === "completed";
		const transit = local ? undefined : systemOwner("in-transit");
		if (transit) await ledger.system(transit, req.currency, req.amount);
		const row: TransferRow = {
			owner_id: req.payer,
			id,
			kind: "transfer",
			from_id: req.payer,
			to_id: req.payee,
			from_region: this.deps.region,
			to_region: payeeRegion,
			amount: req.amount,
			currency: req.currency,
			memo: req.memo,
			status,
			reason: null,
			operator_id: null,
			idempotency_key: req.idempotencyKey,
			request_hash: req.requestHash,
			created_at: now,
			completed_at: local ? now : null
		};
		const rows = local ? [row, { ...row, owner_id: req.payee, idempotency_key: null, request_hash: null }] : [row];
		try {
			await ledger.db.insertInto("money_transfers").values(rows).execute();
		} catch (err) {
			if (!isDuplicateKey(err)) throw err;
			// The same key, sent twice at once: the other one won; this one's balance changes are undone and its answer replayed.
			if (local) await ledger.creditUser(req.payee, req.currency, -req.amount, true);
			if (transit) await ledger.system(transit, req.currency, -req.amount);
			await ledger.creditUser(req.payer, req.currency, req.amount, true);
			const earlier = await this.replay(req.payer, req.idempotencyKey, req.requestHash);
			if (!earlier) throw err;
			return { row: earlier, replayed: true, queued: false };
		}
		await ledger.entries([
			entry(id, req.payer, req.currency, -req.amount, "transfer", now),
			entry(id, transit ?? req.payee, req.currency, req.amount, "transfer", now)
		]);
		if (local) await addToOutbox(ledger.db, receivedNotice(id, req.payee, req.payer, req.amount.toString(), req.currency, this.deps.region));
		else {
			await addToOutbox(ledger.db, creditRequest(id, req, this.deps.region, payeeRegion, now));
		}
		return { row: { ...row, amount: req.amount.toString() }, replayed: false, queued: !local };
	}

	/**
	 * At the payee's home, inside the payee's fenced write: applies a credit once. The payee's copy
	 * of the transfer is inserted before anything else: its key is what makes the credit once, and
	 * a fenced write commits what it wrote before it failed, so a credit delivered twice at once
	 * (a redelivery while the first is still running) must find the copy taken before it moves money.
	 * A refusal is recorded as that copy (`failed`), so a later delivery cannot apply what was
	 * refused. Either way the payer's home is told.
	 */
	async applyCredit(msg: CreditMessage, refusal: CreditRefusal | null): Promise<"applied" | "refused" | "repeat"> {
		const { ledger } = this;
		const amount = BigInt(msg.amount);
		const now = Date.now();
		const copy = {
			owner_id: msg.userId,
			id: msg.transferId,
			kind: "transfer",
			from_id: msg.from,
			to_id: msg.userId,
			from_region: msg.fromRegion,
			to_region: this.deps.region,
			amount,
			currency: msg.currency,
			memo: msg.memo,
			status: refusal === null ? "completed" : "failed",
			reason: refusal,
			operator_id: null,
			idempotency_key: null,
			request_hash: null,
			created_at: msg.createdAt,
			completed_at: now
		};
		try {
			await ledger.db.insertInto("money_transfers").values(copy).execute();
		} catch (err) {
			if (isDuplicateKey(err)) return "repeat";
			throw err;
		}
		let reason: CreditRefusal | null = refusal;
		if (reason === null && !(await ledger.creditUser(msg.userId, msg.currency, amount))) {
			reason = "WALLET_FROZEN";
			await ledger.db
				.updateTable("money_transfers")
				.set({ status: "failed", reason })
				.where("owner_id", "=", msg.userId)
				.where("id", "=", msg.transferId)
				.execute();
		}
		if (reason === null) {
			const transit = systemOwner("in-transit");
			await ledger.system(transit, msg.currency, -amount);
			await ledger.entries([
				entry(msg.transferId, transit, msg.currency, -amount, "transfer", now),
				entry(msg.transferId, msg.userId, msg.currency, amount, "transfer", now)
			]);
			await addToOutbox(ledger.db, receivedNotice(msg.transferId, msg.userId, msg.from, msg.amount, msg.currency, this.deps.region));
		}
		const settle: SettleMessage = { userId: msg.from, transferId: msg.transferId, outcome: reason === null ? "completed" : "failed", reason };
		await addToOutbox(ledger.db, outboxRow(msg.userId, SETTLE_CHANNEL, msg.from, msg.fromRegion, settle));
		return reason === null ? "applied" : "refused";
	}

	/**
	 * At the payer's home, inside the payer's fenced write: a pending transfer ends once. A failed
	 * one is refunded from this region's in-transit (the payer may have moved since: the regions'
	 * in-transit accounts still sum to what is in flight).
	 */
	async settle(msg: SettleMessage): Promise<boolean> {
		const { ledger } = this;
		const now = Date.now();
		const r = await ledger.db
			.updateTable("money_transfers")
			.set({ status: msg.outcome, reason: msg.reason, completed_at: now })
			.where("owner_id", "=", msg.userId)
			.where("id", "=", msg.transferId)
			.where("status", "=", "pending")
			.executeTakeFirst();
		if (Number(r.numUpdatedRows) !== 1) return false;
		if (msg.outcome === "failed") {
			const row = await ledger.db
				.selectFrom("money_transfers")
				.select(["currency", "to_id"])
				.select(ledger.text("amount").as("amount"))
				.where("owner_id", "=", msg.userId)
				.where("id", "=", msg.transferId)
				.executeTakeFirstOrThrow();
			const amount = BigInt(row.amount);
			const transit = systemOwner("in-transit");
			await ledger.creditUser(msg.userId, row.currency, amount, true);
			await ledger.system(transit, row.currency, -amount);
			await ledger.entries([
				entry(msg.transferId, transit, row.currency, -amount, "refund", now),
				entry(msg.transferId, msg.userId, row.currency, amount, "refund", now)
			]);
			await addToOutbox(ledger.db, failedNotice(msg.transferId, msg.userId, row.to_id, row.amount, row.currency, msg.reason ?? "FAILED", this.deps.region));
		}
		return true;
	}
}

export interface Adjustment {
	userId: string;
	/** Positive: issued to the user; negative: taken back to issuance. */
	amount: bigint;
	currency: string;
	reason: string;
	operator: string;
}

/** An operator's correction: a transfer between the user and this region's issuance, recorded with who made it and why. Frozen wallets too. */
export async function adjust(ledger: Ledger, region: string, adj: Adjustment): Promise<TransferRow> {
	const now = Date.now();
	const id = randomUUID();
	const issuance = systemOwner("issuance");
	if (adj.amount > 0n) await ledger.creditUser(adj.userId, adj.currency, adj.amount, true);
	else if (!(await ledger.debitUser(adj.userId, adj.currency, -adj.amount, true))) throw await ledger.refusal(adj.userId, adj.currency, -adj.amount, true);
	await ledger.system(issuance, adj.currency, -adj.amount);
	await ledger.entries([entry(id, adj.userId, adj.currency, adj.amount, "adjustment", now), entry(id, issuance, adj.currency, -adj.amount, "adjustment", now)]);
	const row: TransferRow = {
		owner_id: adj.userId,
		id,
		kind: "adjustment",
		from_id: adj.amount > 0n ? issuance : adj.userId,
		to_id: adj.amount > 0n ? adj.userId : issuance,
		from_region: region,
		to_region: region,
		amount: adj.amount > 0n ? adj.amount : -adj.amount,
		currency: adj.currency,
		memo: adj.reason,
		status: "completed",
		reason: null,
		operator_id: adj.operator,
		idempotency_key: null,
		request_hash: null,
		created_at: now,
		completed_at: now
	};
	await ledger.db.insertInto("money_transfers").values(row).execute();
	return { ...row, amount: row.amount.toString() };
}

export function entry(transferId: string, owner: string, currency: string, amount: bigint, kind: EntryRow["kind"], at: number): EntryRow {
	return { transfer_id: transferId, account_owner: owner, currency, kind, amount, created_at: at };
}
