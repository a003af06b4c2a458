import { randomUUID } from "node:crypto";
import { isDuplicateKey } from "../../regions/stores/sql.ts";
import { HoldNotFoundError, HoldNotPendingError } from "./errors.ts";
import { replayOf } from "./idempotency.ts";
import type { Ledger } from "./ledger.ts";
import type { Payments } from "./payments.ts";
import type { HoldRow } from "./views.ts";
import { holdView } from "./views.ts";

/**
 * Two-phase payments: a hold sets part of the payer's balance aside (available drops, the balance
 * does not) until it is captured (a transfer of the held amount to the hold's payee), voided, or
 * expires. Each settles once: the status moves from `pending` by a guarded update.
 */

export interface HoldRequest {
	payer: string;
	payee: string;
	amount: bigint;
	currency: string;
	memo: string | null;
	/** Seconds from its creation to its expiry. */
	lifetimeS: number;
	idempotencyKey: string;
	requestHash: string;
}

export class Holds {
	private readonly ledger: Ledger;
	private readonly payments: Payments;

	constructor(ledger: Ledger, payments: Payments) {
		this.ledger = ledger;
		this.payments = payments;
	}

	async find(owner: string, id: string): Promise<HoldRow | undefined> {
		return (await this.ledger.db
			.selectFrom("money_holds")
			.selectAll()
			.select(this.ledger.text("amount").as("amount"))
			.where("owner_id", "=", owner)
			.where("id", "=", id)
			.executeTakeFirst()) as HoldRow | undefined;
	}

	async get(owner: string, id: string): Promise<HoldRow> {
		const row = await this.find(owner, id);
		if (!row) throw new HoldNotFoundError(id);
		return row;
	}

	private async byKey(owner: string, key: string): Promise<HoldRow | undefined> {
		return (await this.ledger.db
			.selectFrom("money_holds")
			.selectAll()
			.select(this.ledger.text("amount").as("amount"))
			.where("owner_id", "=", owner)
			.where("idempotency_key", "=", key)
			.executeTakeFirst()) as HoldRow | undefined;
	}

	async place(req: HoldRequest): Promise<{ row: HoldRow; replayed: boolean }> {
		const earlier = await this.byKey(req.payer, req.idempotencyKey);
		if (earlier) return { row: replayOf(earlier, req.requestHash), replayed: true };
		if (!(await this.ledger.holdFunds(req.payer, req.currency, req.amount))) throw await this.ledger.refusal(req.payer, req.currency, req.amount);
		const createdAt = Date.now();
		const row: HoldRow = {
			id: randomUUID(),
			owner_id: req.payer,
			to_id: req.payee,
			amount: req.amount,
			currency: req.currency,
			memo: req.memo,
			status: "pending",
			transfer_id: null,
			idempotency_key: req.idempotencyKey,
			request_hash: req.requestHash,
			created_at: createdAt,
			expires_at: createdAt + req.lifetimeS * 1000
		};
		try {
			await this.ledger.db.insertInto("money_holds").values(row).execute();
		} catch (err) {
			if (!isDuplicateKey(err)) throw err;
			await this.ledger.releaseFunds(req.payer, req.currency, req.amount);
			const first = await this.byKey(req.payer, req.idempotencyKey);
			if (!first) throw err;
			return { row: replayOf(first, req.requestHash), replayed: true };
		}
		return { row: { ...row, amount: req.amount.toString() }, replayed: false };
	}

	/** A pending hold, not yet expired, or HOLD_NOT_FOUND / HOLD_NOT_PENDING. */
	private async pending(owner: string, id: string): Promise<HoldRow> {
		const row = await this.get(owner, id);
		const status = holdView(row).status;
		if (status !== "pending") throw new HoldNotPendingError(id, status);
		return row;
	}

	/** Transfers the held amount to the hold's payee (homed in `payeeHome`); refused, it leaves the hold as it was. */
	async capture(owner: string, id: string, payeeHome: (payee: string) => Promise<string>): Promise<HoldRow> {
		const row = await this.pending(owner, id);
		const amount = BigInt(row.amount);
		const home = await payeeHome(row.to_id);
		// The status moves first: of two settlements of one hold racing in a batch, only one passes.
		if (!(await this.settle(owner, id, "captured"))) throw new HoldNotPendingError(id, "settled");
		await this.ledger.releaseFunds(owner, row.currency, amount);
		let transferId: string;
		try {
			const done = await this.payments.transfer({
				payer: owner,
				payee: row.to_id,
				payeeHome: home,
				amount,
				currency: row.currency,
				memo: row.memo,
				idempotencyKey: null,
				requestHash: null
			});
			transferId = done.row.id;
		} catch (err) {
			await this.ledger.releaseFunds(owner, row.currency, -amount);
			await this.ledger.db.updateTable("money_holds").set({ status: "pending" }).where("owner_id", "=", owner).where("id", "=", id).execute();
			throw err;
		}
		await this.ledger.db.updateTable("money_holds").set({ transfer_id: transferId }).where("owner_id", "=", owner).where("id", "=", id).execute();
		return { ...row, status: "captured", transfer_id: transferId };
	}

	async void(owner: string, id: string): Promise<HoldRow> {
		const row = await this.pending(owner, id);
		if (!(await this.settle(owner, id, "voided"))) throw new HoldNotPendingError(id, "settled");
		await this.ledger.releaseFunds(owner, row.currency, BigInt(row.amount));
		return { ...row, status: "voided" };
	}

	/** The sweeper's step: a pending hold past its expiry gives its funds back (once). */
	async expire(owner: string, id: string, now = Date.now()): Promise<boolean> {
		const row = await this.find(owner, id);
		if (row?.status !== "pending" || Number(row.expires_at) > now) return false;
		if (!(await this.settle(owner, id, "expired"))) return false;
		await this.ledger.releaseFunds(owner, row.currency, BigInt(row.amount));
		return true;
	}

	/** Moves a pending hold to `status`; false when another settlement came first. */
	private async settle(owner: string, id: string, status: HoldRow["status"]): Promise<boolean> {
		const r = await this.ledger.db
			.updateTable("money_holds")
			.set({ status })
			.where("owner_id", "=", owner)
			.where("id", "=", id)
			.where("status", "=", "pending")
			.executeTakeFirst();
		return Number(r.numUpdatedRows) === 1;
	}
}
