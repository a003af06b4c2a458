import type { Kysely } from "kysely";
import type { HeldAuditRecord } from "../../mixins/audit.mixin.ts";
import { AUDIT_CHANNEL } from "../../mixins/audit.mixin.ts";
import type { OutboxRow } from "../../mixins/channels/sql-outbox-relay.ts";

/**
 * Messages to other regions written in the same transaction as the ledger change that calls for
 * them (a credit for a payee's home, an outcome for a payer's): they exist exactly when that
 * change committed. The relay (outbox-relay.ts) hands them to the durable channels afterwards.
 */

export const CREDIT_CHANNEL = "money.credit";
export const SETTLE_CHANNEL = "money.settle";
/** Where sv-notice takes notices from (services/sv-notice): the wallet tells users of money received and transfers failed. */
export const NOTICE_CHANNEL = "notice.send";

/** A payee's home is asked to credit a transfer the payer's home debited. */
export interface CreditMessage {
	userId: string;
	transferId: string;
	from: string;
	fromRegion: string;
	amount: string;
	currency: string;
	memo: string | null;
	createdAt: number;
}

/** A payer's home learns how its pending transfer ended. */
export interface SettleMessage {
	userId: string;
	transferId: string;
	outcome: "completed" | "failed";
	reason: string | null;
}

/** The payee's home is asked to credit a transfer the payer's home (`fromRegion`) just debited. */
export function creditRequest(
	transferId: string,
	t: { payer: string; payee: string; amount: bigint; currency: string; memo: string | null },
	fromRegion: string,
	payeeRegion: string,
	at: number
): OutboxRow {
	const credit: CreditMessage = {
		userId: t.payee,
		transferId,
		from: t.payer,
		fromRegion,
		amount: t.amount.toString(),
		currency: t.currency,
		memo: t.memo,
		createdAt: at
	};
	return outboxRow(t.payer, CREDIT_CHANNEL, t.payee, payeeRegion, credit);
}

/** A notice for sv-notice, sent once per idempotency key. */
export interface NoticeMessage {
	userId: string;
	category: "wallet";
	template: "transfer-received" | "transfer-failed";
	data: Record<string, string>;
	idempotencyKey: string;
}

/** The payee's notice of a credit. */
export function receivedNotice(transferId: string, payee: string, payer: string, amount: string, currency: string, region: string): OutboxRow {
	const notice: NoticeMessage = {
		userId: payee,
		category: "wallet",
		template: "transfer-received",
		data: { amount, currency, from: payer },
		idempotencyKey: `transfer-received:${transferId}`
	};
	return outboxRow(payee, NOTICE_CHANNEL, payee, region, notice);
}

/** The payer's notice of a refund. */
export function failedNotice(transferId: string, payer: string, payee: string, amount: string, currency: string, reason: string, region: string): OutboxRow {
	const notice: NoticeMessage = {
		userId: payer,
		category: "wallet",
		template: "transfer-failed",
		data: { amount, currency, to: payee, reason },
		idempotencyKey: `transfer-failed:${transferId}`
	};
	return outboxRow(payer, NOTICE_CHANNEL, payer, region, notice);
}

/** The payload column's size (MariaDB): an audit record's detail must leave room for the rest. */
export const AUDIT_DETAIL_BYTES = 1000;

/** An audit record of a wallet write (adjustment, freeze), for this region's audit log: sent once the write has committed. */
export function auditRow(owner: string, region: string, held: HeldAuditRecord): OutboxRow {
	return outboxRow(owner, AUDIT_CHANNEL, owner, region, held);
}

export function outboxRow(
	owner: string,
	channel: string,
	key: string,
	region: string,
	payload: CreditMessage | SettleMessage | NoticeMessage | HeldAuditRecord
): OutboxRow {
	return { owner_id: owner, channel, msg_key: key, region, payload: JSON.stringify(payload), created_at: Date.now() };
}

export async function addToOutbox(db: Kysely<any>, row: OutboxRow): Promise<void> {
	await db.insertInto("money_outbox").values(row).execute();
}
