/** What clients see of a transfer and a hold: ids, strings of minor units, ISO times. */

export interface TransferRow {
	owner_id: string;
	id: string;
	kind: string;
	from_id: string;
	to_id: string;
	from_region: string;
	to_region: string;
	amount: string | bigint;
	currency: string;
	memo: string | null;
	status: "completed" | "pending" | "failed";
	reason: string | null;
	operator_id: string | null;
	idempotency_key: string | null;
	request_hash: string | null;
	created_at: number | string;
	completed_at: number | string | null;
}

export interface HoldRow {
	id: string;
	owner_id: string;
	to_id: string;
	amount: string | bigint;
	currency: string;
	memo: string | null;
	status: "pending" | "captured" | "voided" | "expired";
	transfer_id: string | null;
	idempotency_key: string | null;
	request_hash: string | null;
	created_at: number | string;
	expires_at: number | string;
}

export interface TransferView {
	id: string;
	status: TransferRow["status"];
	from: string;
	to: string;
	amount: string;
	currency: string;
	memo: string | null;
	reason: string | null;
	createdAt: string;
	completedAt: string | null;
}

export interface HoldView {
	id: string;
	status: HoldRow["status"];
	from: string;
	to: string;
	amount: string;
	currency: string;
	memo: string | null;
	createdAt: string;
	expiresAt: string;
	transferId: string | null;
}

const iso = (ms: number | string) => new Date(Number(ms)).toISOString();

/** Adjustments name the region's issuance as their other side, whichever slot carried it. */
const party = (id: string) => (id.startsWith("sys:") ? `system:${id.split(":")[1]}` : id);

export function transferView(row: TransferRow): TransferView {
	return {
		id: row.id,
		status: row.status,
		from: party(row.from_id),
		to: party(row.to_id),
		amount: row.amount.toString(),
		currency: row.currency,
		memo: row.memo,
		reason: row.reason,
		createdAt: iso(row.created_at),
		completedAt: row.completed_at === null ? null : iso(row.completed_at)
	};
}

/** A pending hold past its expiry reads as expired at once; the sweeper gives its funds back shortly after. */
export function holdView(row: HoldRow, now = Date.now()): HoldView {
	return {
		id: row.id,
		status: row.status === "pending" && Number(row.expires_at) <= now ? "expired" : row.status,
		from: row.owner_id,
		to: row.to_id,
		amount: row.amount.toString(),
		currency: row.currency,
		memo: row.memo,
		createdAt: iso(row.created_at),
		expiresAt: iso(row.expires_at),
		transferId: row.transfer_id
	};
}
