import type { TransferRow as StoredTransfer } from "../../services/sv-money/views.ts";
import { CALL_FAILURE_CODES, MONEY_REFUSALS } from "./bank-codes.ts";
import { ENTRY_NODE_KILLED, NO_ANSWER } from "./codes.ts";

/**
 * The bank test's checker (issue #13), pure: everything it judges is in its input, the clients'
 * history and every region's sv-money tables as read from MariaDB after healing.
 */

/**
 * What one call of a transfer came back with: `ok`; `refused` by sv-money (a business answer,
 * nothing written); `fail`, a documented refusal of the region runtime that sent nothing
 * (USER_MOVING, REGION_UNAVAILABLE…), to be retried; `unknown`, it may have run (a timeout, the
 * entry node killed, OUTCOME_UNKNOWN).
 */
export type Outcome = "ok" | "refused" | "fail" | "unknown";

export interface Attempt {
	/**
	 * The first call; the client's own retries of an unanswered one during the load; a client sending
	 * an acknowledged transfer's key and body again (`replay`); the retries after healing.
	 */
	phase: "load" | "retry" | "replay" | "healed";
	entry: string;
	invokeMs: number;
	completeMs?: number;
	outcome?: Outcome;
	code?: string;
	message?: string;
	transferId?: string;
	replayed?: boolean;
}

/** One transfer a client asked for, under one idempotency key, with every call made for it. */
export interface TransferOp {
	key: string;
	payer: string;
	payee: string;
	amount: string;
	currency: string;
	/** The payee lived in another region than the payer when the client picked them. */
	cross: boolean;
	attempts: Attempt[];
}

/** The key of an acknowledged transfer sent again with another body: it must be refused IDEMPOTENCY_KEY_REUSED and change nothing. */
export interface KeyReuse {
	key: string;
	payer: string;
	attempt: Attempt;
}

export interface AccountRow {
	owner_id: string;
	currency: string;
	kind: string;
	balance: string;
	held: string;
}

/** A transfer row as read, its amount as a decimal string. */
export type TransferRow = Pick<
	StoredTransfer,
	"owner_id" | "id" | "kind" | "from_id" | "to_id" | "from_region" | "to_region" | "currency" | "status" | "reason" | "idempotency_key"
> & { amount: string };

/** Entries summed per transfer, account and kind. */
export interface EntrySum {
	transfer_id: string;
	account_owner: string;
	kind: string;
	currency: string;
	n: number;
	total: string;
}

/** One region's sv-money tables. */
export interface MoneyTables {
	accounts: AccountRow[];
	transfers: TransferRow[];
	entries: EntrySum[];
	/** Messages still waiting in the outbox. */
	outbox: number;
}

export interface BankInput {
	regions: string[];
	/** The users the history's transfers are between (rows of other users are checked by the table checks only). */
	users: string[];
	/** Each user's home at the end, read from the directory's origin. */
	homes: Record<string, string | undefined>;
	transfers: TransferOp[];
	reuses: KeyReuse[];
	/** What acknowledged adjustments issued, per currency, over every user of the ledgers. */
	issued: Record<string, bigint>;
	tables: Record<string, MoneyTables>;
	/** Each region's `sv-money.reconcile` answer, or why it could not be had. */
	reconciliations: Record<string, { ok: boolean } | string>;
}

/** Every invariant of the bank test: each must be zero. */
export const BANK_INVARIANTS = [
	"lost",
	"duplicated",
	"refusedButApplied",
	"failedButApplied",
	"idMismatch",
	"replayMismatch",
	"reuseAccepted",
	"unresolved",
	"phantom",
	"outsideHome",
	"creditedTwice",
	"missingCredit",
	"failedButCredited",
	"orphanCredits",
	"entryMismatch",
	"unbalanced",
	"stuck",
	"negative",
	"strayAccounts",
	"conservation",
	"inTransitLeft",
	"outboxLeft",
	"reconcileFailed",
	"undocumented"
] as const;

export type BankInvariant = (typeof BANK_INVARIANTS)[number];

export interface BankCounts extends Record<BankInvariant, number> {
	transfers: number;
	/** Each transfer's first call. */
	ok: number;
	refused: number;
	failed: number;
	unknown: number;
	/** Non-ok answers of every call, by code (harness outcomes in parentheses). */
	codes: Record<string, number>;
	/** The same key and body sent again during the load, and how many of those were answered. */
	replays: number;
	replaysOk: number;
	/** A key sent again with another body, and how many were refused IDEMPOTENCY_KEY_REUSED. */
	reuses: number;
	reusesRefused: number;
	/** Transfers sent again under their key during the load and after healing, and those a retry found already applied (an unknown outcome that had run). */
	retried: number;
	retriedAfterHealing: number;
	retriedFoundApplied: number;
	/** Informational: RECIPIENT_NOT_FOUND answered for a payee that exists (a directory view that did not hold it). */
	recipientNotFound: number;
	/** The payers' copies of transfers in the tables at the end, by status, and those between regions. */
	byStatus: Record<string, number>;
	crossRegion: number;
	/** Per currency: user balances, in-transit and issuance summed over every region. */
	sums: Record<string, { users: string; inTransit: string; issuance: string }>;
}

export interface BankCheck {
	counts: BankCounts;
	/** A few examples of each anomaly. */
	samples: Record<string, string[]>;
}

const HARNESS_OUTCOMES = new Set([ENTRY_NODE_KILLED, NO_ANSWER]);

/** Codes a transfer call may end with: sv-money's refusals, the region runtime's call failures and the harness's outcomes. */
export function documentedCode(code: string): boolean {
	return MONEY_REFUSALS.includes(code) || CALL_FAILURE_CODES.includes(code) || HARNESS_OUTCOMES.has(code);
}

/** What a transfer op came to: the answer of its last call that settled it (ok or refused), or undefined while none did. */
export function resolution(op: TransferOp): Attempt | undefined {
	return op.attempts.findLast(a => a.outcome === "ok" || a.outcome === "refused");
}

const systemKind = (owner: string) => (owner.startsWith("sys:") ? owner.split(":")[1]! : undefined);

export function checkBank(input: BankInput): BankCheck {
	const samples: Record<string, string[]> = {};
	const found = Object.fromEntries(BANK_INVARIANTS.map(k => [k, 0])) as Record<BankInvariant, number>;
	const sample = (what: string, line: string) => {
		const list = (samples[what] ??= []);
		if (list.length < 5) list.push(line);
	};
	const flag = (what: BankInvariant, line: string) => {
		found[what]++;
		sample(what, line);
	};
	const users = new Set(input.users);

	// Every region's rows together: a user's rows live in its home, but a bug could leave some behind.
	const payerRows = new Map<string, (TransferRow & { region: string })[]>();
	const payeeRows = new Map<string, (TransferRow & { region: string })[]>();
	const byKey = new Map<string, (TransferRow & { region: string })[]>();
	for (const region of input.regions)
		for (const row of input.tables[region]?.transfers ?? []) {
			if (row.kind !== "transfer") continue;
			const r = { ...row, region };
			if (row.owner_id === row.from_id) {
				payerRows.set(row.id, [...(payerRows.get(row.id) ?? []), r]);
				if (row.idempotency_key !== null)
					byKey.set(`${row.from_id} ${row.idempotency_key}`, [...(byKey.get(`${row.from_id} ${row.idempotency_key}`) ?? []), r]);
			} else payeeRows.set(row.id, [...(payeeRows.get(row.id) ?? []), r]);
		}

	// The history: each acknowledged transfer once, under its key, where its payer lives; nothing the clients were refused.
	const codes: Record<string, number> = {};
	const noteCode = (key: string, a: Attempt) => {
		if (a.outcome === "ok" || a.code === undefined) return;
		codes[a.code] = (codes[a.code] ?? 0) + 1;
		if (!documentedCode(a.code)) flag("undocumented", `${a.code} for ${key} via ${a.entry}: ${a.message ?? ""}`);
	};
	const first = { ok: 0, refused: 0, fail: 0, unknown: 0 };
	let replays = 0;
	let replaysOk = 0;
	let retried = 0;
	let retriedAfterHealing = 0;
	let retriedFoundApplied = 0;
	let recipientNotFound = 0;
	const issuedKeys = new Set<string>();
	for (const op of input.transfers) {
		issuedKeys.add(`${op.payer} ${op.key}`);
		const head = op.attempts[0];
		if (head?.outcome) first[head.outcome]++;
		for (const a of op.attempts) {
			if (a.phase === "replay") {
				replays++;
				if (a.outcome === "ok") replaysOk++;
			}
			noteCode(op.key, a);
			if (a.code === "RECIPIENT_NOT_FOUND" && users.has(op.payee)) {
				recipientNotFound++;
				sample("recipientNotFound", `${op.key}: ${op.payee} not found via ${a.entry} at ${new Date(a.invokeMs).toISOString()}`);
			}
		}
		const retries = op.attempts.filter(a => a.phase === "retry" || a.phase === "healed");
		if (retries.length) retried++;
		if (retries.some(a => a.phase === "healed")) retriedAfterHealing++;
		if (retries.some(a => a.outcome === "ok" && a.replayed)) retriedFoundApplied++;
		const rows = byKey.get(`${op.payer} ${op.key}`) ?? [];
		const settled = resolution(op);
		const oks = op.attempts.filter(a => a.outcome === "ok");
		const what = `${op.key} (${op.payer} → ${op.payee}, ${op.amount} ${op.currency}; ${op.attempts.map(a => `${a.phase}:${a.outcome}${a.code ? `/${a.code}` : ""}${a.replayed ? "/replayed" : ""}`).join(" ")})`;
		if (rows.length > 1) flag("duplicated", `${what}: ${rows.length} rows (${rows.map(r => `${r.id} in ${r.region}`).join(", ")})`);
		if (!settled) flag("unresolved", what);
		else if (settled.outcome === "ok" && rows.length === 0) flag("lost", `${what}: acknowledged as ${settled.transferId}, no row`);
		else if (settled.outcome === "refused" && rows.length > 0)
			flag("refusedButApplied", `${what}: refused ${settled.code}, yet ${rows[0]!.id} in ${rows[0]!.region}`);
		// One id for every acknowledgement; only the first call that made the row may say it is new.
		const ids = new Set([...oks.map(a => a.transferId), ...rows.map(r => r.id)]);
		if (oks.length && ids.size > 1) flag("idMismatch", `${what}: ids ${[...ids].join(", ")}`);
		if (oks.filter(a => !a.replayed).length > 1) flag("replayMismatch", `${what}: answered as new more than once`);
		for (const a of op.attempts.filter(x => x.phase === "replay" && x.outcome === "refused"))
			flag("replayMismatch", `${what}: the same key and body refused ${a.code}`);
		// Applied by a call that was answered with a refusal that promised nothing was sent.
		const firstOk = oks[0];
		if (firstOk?.replayed) {
			const before = op.attempts.slice(0, op.attempts.indexOf(firstOk));
			if (before.length && before.every(a => a.outcome === "fail" || a.outcome === "refused"))
				flag("failedButApplied", `${what}: no call before the replay could have run`);
		}
		for (const r of rows) {
			if (r.to_id !== op.payee || r.amount !== op.amount || r.currency !== op.currency)
				flag("phantom", `${what}: row ${r.id} says ${r.to_id} ${r.amount} ${r.currency}`);
			if (input.homes[op.payer] !== r.region) flag("outsideHome", `${what}: payer's copy in ${r.region}, payer's home ${input.homes[op.payer]}`);
		}
	}
	let reusesRefused = 0;
	for (const reuse of input.reuses) {
		noteCode(reuse.key, reuse.attempt);
		if (reuse.attempt.outcome === "ok") flag("reuseAccepted", `${reuse.key} of ${reuse.payer}: another body accepted as ${reuse.attempt.transferId}`);
		else if (reuse.attempt.code === "IDEMPOTENCY_KEY_REUSED") reusesRefused++;
		else if (reuse.attempt.outcome === "refused")
			flag("reuseAccepted", `${reuse.key} of ${reuse.payer}: another body refused ${reuse.attempt.code}, not IDEMPOTENCY_KEY_REUSED`);
	}

	// The tables: each transfer applied once on each side, its entries balanced, no money made or lost.
	const entries = new Map<string, Map<string, { n: number; total: bigint }>>();
	const transferSums = new Map<string, bigint>();
	for (const region of input.regions)
		for (const e of input.tables[region]?.entries ?? []) {
			const owner = systemKind(e.account_owner) ? `sys:${systemKind(e.account_owner)}` : e.account_owner;
			const perTransfer = entries.get(e.transfer_id) ?? new Map<string, { n: number; total: bigint }>();
			entries.set(e.transfer_id, perTransfer);
			const k = `${owner} ${e.kind}`;
			const sum = perTransfer.get(k) ?? { n: 0, total: 0n };
			perTransfer.set(k, { n: sum.n + e.n, total: sum.total + BigInt(e.total) });
			transferSums.set(e.transfer_id, (transferSums.get(e.transfer_id) ?? 0n) + BigInt(e.total));
		}
	const entryOf = (id: string, owner: string, kind: string) => entries.get(id)?.get(`${owner} ${kind}`) ?? { n: 0, total: 0n };
	const byStatus: Record<string, number> = {};
	let crossRegion = 0;
	for (const [id, rows] of payerRows) {
		const row = rows[0]!;
		byStatus[row.status] = (byStatus[row.status] ?? 0) + 1;
		if (row.from_region !== row.to_region) crossRegion++;
		const what = `${id} (${row.from_id}@${row.from_region} → ${row.to_id}@${row.to_region}, ${row.amount} ${row.currency}, ${row.status}${row.reason ? ` ${row.reason}` : ""})`;
		if (rows.length > 1) flag("duplicated", `${what}: payer's copy in ${rows.map(r => r.region).join(", ")}`);
		// A captured hold's transfer has no key of its own.
		if (users.has(row.from_id) && row.idempotency_key !== null && !issuedKeys.has(`${row.from_id} ${row.idempotency_key}`))
			flag("phantom", `${what}: key ${row.idempotency_key} was never sent`);
		const credits = payeeRows.get(id) ?? [];
		if (credits.length > 1) flag("creditedTwice", `${what}: payee's copy in ${credits.map(r => `${r.region} (${r.status})`).join(", ")}`);
		const credit = credits[0];
		const amount = BigInt(row.amount);
		if (row.status === "pending") {
			flag("stuck", what);
			continue;
		}
		if (row.status === "completed" && credit?.status !== "completed") flag("missingCredit", `${what}: payee's copy ${credit ? credit.status : "absent"}`);
		if (row.status === "failed" && credit?.status === "completed")
			flag("failedButCredited", `${what}: refunded, yet the payee's copy is completed in ${credit.region}`);
		const out = entryOf(id, row.from_id, "transfer");
		const refund = entryOf(id, row.from_id, "refund");
		const into = entryOf(id, row.to_id, "transfer");
		const refunded = row.status === "failed";
		const credited = row.status === "completed";
		if (
			out.n !== 1 ||
			out.total !== -amount ||
			refund.n !== (refunded ? 1 : 0) ||
			refund.total !== (refunded ? amount : 0n) ||
			into.n !== (credited ? 1 : 0) ||
			into.total !== (credited ? amount : 0n)
		)
			flag(
				"entryMismatch",
				`${what}: payer debited ${out.n}× (${out.total}), refunded ${refund.n}× (${refund.total}), payee credited ${into.n}× (${into.total})`
			);
		if ((transferSums.get(id) ?? 0n) !== 0n) flag("unbalanced", `${what}: its entries sum to ${transferSums.get(id)}`);
	}
	for (const [id, credits] of payeeRows)
		if (!payerRows.has(id))
			flag("orphanCredits", `${id}: payee's copy ${credits.map(c => `${c.to_id} in ${c.region} (${c.status})`).join(", ")} with no payer's copy`);

	// Accounts: none negative, each user's only in its home, every currency summing to zero with nothing left in transit.
	const sums: Record<string, { users: bigint; inTransit: bigint; issuance: bigint; other: bigint }> = {};
	for (const region of input.regions) {
		for (const a of input.tables[region]?.accounts ?? []) {
			const s = (sums[a.currency] ??= { users: 0n, inTransit: 0n, issuance: 0n, other: 0n });
			const balance = BigInt(a.balance);
			const kind = systemKind(a.owner_id);
			if (kind === undefined) {
				s.users += balance;
				const held = BigInt(a.held);
				if (balance < 0n || held < 0n || held > balance) flag("negative", `${a.owner_id} in ${region}: ${a.balance} ${a.currency}, held ${a.held}`);
				if (input.homes[a.owner_id] !== undefined && input.homes[a.owner_id] !== region)
					flag("strayAccounts", `${a.owner_id}'s ${a.currency} account in ${region} (${a.balance}), home ${input.homes[a.owner_id]}`);
			} else if (kind === "in-transit") s.inTransit += balance;
			else if (kind === "issuance") s.issuance += balance;
			else s.other += balance;
		}
		const outbox = input.tables[region]?.outbox ?? 0;
		if (outbox > 0) flag("outboxLeft", `${region}: ${outbox} message(s) never sent`);
		const rec = input.reconciliations[region];
		if (typeof rec === "string" || !rec?.ok) flag("reconcileFailed", `${region}: ${typeof rec === "string" ? rec : JSON.stringify(rec)}`);
	}
	for (const [currency, s] of Object.entries(sums)) {
		const total = s.users + s.inTransit + s.issuance + s.other;
		const issued = input.issued[currency] ?? 0n;
		if (total !== 0n || s.users + s.inTransit !== issued || -s.issuance !== issued)
			flag(
				"conservation",
				`${currency}: users ${s.users} + in-transit ${s.inTransit} + issuance ${s.issuance} + other ${s.other} = ${total}; issued ${issued}`
			);
		if (s.inTransit !== 0n) flag("inTransitLeft", `${currency}: ${s.inTransit} in transit over all regions`);
	}

	const counts: BankCounts = {
		...found,
		transfers: input.transfers.length,
		ok: first.ok,
		refused: first.refused,
		failed: first.fail,
		unknown: first.unknown,
		codes,
		replays,
		replaysOk,
		reuses: input.reuses.length,
		reusesRefused,
		retried,
		retriedAfterHealing,
		retriedFoundApplied,
		recipientNotFound,
		byStatus,
		crossRegion,
		sums: Object.fromEntries(
			Object.entries(sums).map(([c, s]) => [c, { users: s.users.toString(), inTransit: s.inTransit.toString(), issuance: s.issuance.toString() }])
		)
	};
	return { counts, samples };
}

export function bankInvariants(c: BankCounts): Record<BankInvariant, number> {
	return Object.fromEntries(BANK_INVARIANTS.map(k => [k, c[k]])) as Record<BankInvariant, number>;
}
