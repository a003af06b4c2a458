import { randomUUID } from "node:crypto";
import type { Kysely } from "kysely";
import { sql } from "kysely";
import type { OutboxRow } from "../../mixins/channels/sql-outbox-relay.ts";
import { OutcomeUnknownError } from "../../regions/errors.ts";
import { runBatch } from "../../regions/ownership/batch-transaction.ts";
import type { OwnershipRecords } from "../../regions/ownership/records.ts";
import { placeInBatch } from "../../regions/ownership/write-batch.ts";
import { statementTransaction } from "../../regions/stores/grouped-transaction.ts";
import type { SqlDialectName } from "../../regions/stores/sql.ts";
import { IdempotencyKeyReusedError, InsufficientFundsError, WalletFrozenError } from "./errors.ts";
import type { EntryRow } from "./ledger.ts";
import { SYSTEM_SLOTS, systemOwner } from "./ledger.ts";
import { creditRequest, receivedNotice } from "./outbox.ts";
import type { TransferOutcome, TransferRequest } from "./payments.ts";
import { entry } from "./payments.ts";
import type { TransferRow } from "./views.ts";

/**
 * Same-node transfers committed as sets (the TigerBeetle way): a batch of up to `maxSize`
 * transfers is one transaction of a fixed handful of statements, however many it carries: the
 * ownership rows of every payer and local payee (shared lock: a move's freeze waits for the batch,
 * as for any fenced write), the batch's idempotency keys, its accounts (locked for update, in key
 * order) and frozen wallets; then the transfers are applied in memory one by one, each refused
 * alone when the balance is short or a wallet frozen; then one upsert of every account's net
 * change, one insert each of transfer records, entries and outbox messages. A hot account is
 * written once per batch, not once per transfer.
 *
 * A batch the database rolls back (a deadlock, two batches inserting one idempotency key) runs
 * again from the start, nothing of it applied. A payer whose ownership row does not say "active
 * here" is left to `alone` (the fenced path, which settles the row with the directory or waits
 * out a move).
 */

export interface BatchedTransfer {
	req: TransferRequest;
	/** The epoch the caller routed by: an older one than the payer's row is refused (WRONG_REGION). */
	callerEpoch: number | undefined;
}

export interface TransferBatchesOptions {
	region: string;
	db: Kysely<any>;
	dialect: SqlDialectName;
	records: OwnershipRecords;
	/** The fenced one-transfer path, for a payer this batch cannot decide on. */
	alone: (job: BatchedTransfer) => Promise<TransferOutcome>;
	/** Batches in progress at once, each on its own connection (SQLite: 1). */
	lanes: number;
	maxSize: number;
}

interface Job extends BatchedTransfer {
	resolve: (outcome: TransferOutcome) => void;
	reject: (err: unknown) => void;
}

type Decision = { kind: "done"; outcome: TransferOutcome } | { kind: "failed"; error: unknown } | { kind: "alone" };

/** Runs of a batch the database rolled back before its transfers are sent the fenced way one by one. */
const BATCH_ATTEMPTS = 4;

interface Account {
	balance: bigint;
	held: bigint;
	/** Net change this batch makes. */
	delta: bigint;
	kind: string;
}

const accountKey = (owner: string, currency: string) => `${owner}\u0000${currency}`;

export class TransferBatches {
	private readonly opts: TransferBatchesOptions;
	private readonly queue: Job[] = [];
	private readonly freeLanes: number[];
	/** Batches committed, transfers they carried, batches run again: for benches and tests. */
	readonly stats = { batches: 0, transfers: 0, reruns: 0 };

	constructor(opts: TransferBatchesOptions) {
		this.opts = opts;
		this.freeLanes = Array.from({ length: opts.lanes }, (_, i) => i);
	}

	submit(job: BatchedTransfer): Promise<TransferOutcome> {
		return new Promise((resolve, reject) => {
			this.queue.push({ ...job, resolve, reject });
			const lane = this.freeLanes.pop();
			if (lane !== undefined) void this.lane(lane);
		});
	}

	private async lane(lane: number): Promise<void> {
		try {
			while (this.queue.length) {
				const jobs = this.queue.splice(0, this.opts.maxSize);
				const decisions = await this.decide(jobs, lane);
				jobs.forEach((job, i) => {
					const d = decisions[i]!;
					if (d.kind === "done") job.resolve(d.outcome);
					else if (d.kind === "failed") job.reject(d.error);
					else this.opts.alone(job).then(job.resolve, job.reject);
				});
			}
		} finally {
			this.freeLanes.push(lane);
			if (this.queue.length && this.freeLanes.length) void this.lane(this.freeLanes.pop()!);
		}
	}

	private async decide(jobs: Job[], lane: number): Promise<Decision[]> {
		const run = await runBatch(
			this.opts.db,
			trx => this.apply(trx, jobs, lane),
			BATCH_ATTEMPTS,
			() => this.stats.reruns++,
			// Its statements go one by one (reads decide the writes, several steps deep): no groups to send.
			statementTransaction
		);
		switch (run.kind) {
			case "committed":
				this.stats.batches++;
				this.stats.transfers += run.value.filter(d => d.kind === "done" && !d.outcome.replayed).length;
				return run.value;
			case "unknown":
				return jobs.map(j => ({
					kind: "failed",
					error: new OutcomeUnknownError(j.req.payer, "a transfer", `its commit failed: ${(run.error as Error).message}`)
				}));
			case "gave-up":
				return jobs.map(() => ({ kind: "alone" }));
			case "refused":
				throw run.error;
		}
	}

	/** The batch inside its transaction: reads, decisions in memory, then the writes. */
	private async apply(trx: Kysely<any>, jobs: Job[], lane: number): Promise<Decision[]> {
		const { region, dialect, records } = this.opts;
		const decisions: Decision[] = jobs.map(() => ({ kind: "alone" }));
		const localPayees = jobs.filter(j => j.req.payeeHome === region).map(j => j.req.payee);
		const owners = await records.readMany(trx, [...new Set([...jobs.map(j => j.req.payer), ...localPayees])], "share");
		const live: number[] = [];
		jobs.forEach((job, i) => {
			const place = placeInBatch(owners.get(job.req.payer), job.callerEpoch, job.req.payer, region);
			if (place.kind === "member") live.push(i);
			else decisions[i] = place;
		});
		if (!live.length) return decisions;
		const text = (column: string) => sql.raw(`cast(${column} as ${dialect === "mysql" ? "char" : "text"})`);
		const forUpdate = sql.raw(dialect === "mysql" ? " for update" : "");
		const forShare = sql.raw(dialect === "mysql" ? " lock in share mode" : "");
		const payers = [...new Set(live.map(i => jobs[i]!.req.payer))];
		const keys = live.map(i => jobs[i]!.req.idempotencyKey).filter((k): k is string => k !== null);
		const earlier = new Map<string, TransferRow>();
		if (keys.length) {
			const { rows } =
				await sql<TransferRow>`select owner_id, id, kind, from_id, to_id, from_region, to_region, ${text("amount")} as amount, currency, memo, status,
				reason, operator_id, idempotency_key, request_hash, created_at, completed_at from money_transfers
				where owner_id in (${sql.join(payers)}) and idempotency_key in (${sql.join([...new Set(keys)])})`.execute(trx);
			for (const row of rows) earlier.set(accountKey(row.owner_id, row.idempotency_key!), row);
		}
		const transit = systemOwner("in-transit", lane % SYSTEM_SLOTS);
		const users = [...new Set(live.flatMap(i => [jobs[i]!.req.payer, jobs[i]!.req.payee]))];
		const accounts = new Map<string, Account>();
		const { rows: accountRows } = await sql<{ owner_id: string; currency: string; kind: string; balance: string; held: string }>`
			select owner_id, currency, kind, ${text("balance")} as balance, ${text("held")} as held from money_accounts
			where owner_id in (${sql.join([...users, transit])}) order by owner_id, currency${forUpdate}`.execute(trx);
		for (const a of accountRows)
			accounts.set(accountKey(a.owner_id, a.currency), { balance: BigInt(a.balance), held: BigInt(a.held), delta: 0n, kind: a.kind });
		const { rows: frozenRows } = await sql<{
			user_id: string;
		}>`select user_id from money_wallets where user_id in (${sql.join(users)}) and frozen = 1${forShare}`.execute(trx);
		const frozen = new Set(frozenRows.map(r => r.user_id));
		const account = (owner: string, currency: string, kind: string) => {
			const k = accountKey(owner, currency);
			let a = accounts.get(k);
			if (!a) accounts.set(k, (a = { balance: 0n, held: 0n, delta: 0n, kind }));
			return a;
		};
		const transfers: TransferRow[] = [];
		const entries: EntryRow[] = [];
		const outbox: OutboxRow[] = [];
		const made = new Map<string, TransferRow>();
		const now = Date.now();
		for (const i of live) {
			const { req } = jobs[i]!;
			const keyOf = req.idempotencyKey === null ? undefined : accountKey(req.payer, req.idempotencyKey);
			const seen = keyOf && (earlier.get(keyOf) ?? made.get(keyOf));
			if (seen) {
				decisions[i] =
					seen.request_hash === req.requestHash
						? { kind: "done", outcome: { row: seen, replayed: true, queued: false } }
						: { kind: "failed", error: new IdempotencyKeyReusedError() };
				continue;
			}
			const payer = account(req.payer, req.currency, "user");
			const local = req.payeeHome === region && owners.get(req.payee)?.state === "active";
			if (frozen.has(req.payer)) {
				decisions[i] = { kind: "failed", error: new WalletFrozenError(req.payer) };
				continue;
			}
			const available = payer.balance + payer.delta - payer.held;
			if (available < req.amount) {
				decisions[i] = { kind: "failed", error: new InsufficientFundsError(req.currency, (available < 0n ? 0n : available).toString(), req.amount.toString()) };
				continue;
			}
			if (local && frozen.has(req.payee)) {
				decisions[i] = { kind: "failed", error: new WalletFrozenError(req.payee) };
				continue;
			}
			payer.delta -= req.amount;
			if (local) account(req.payee, req.currency, "user").delta += req.amount;
			else account(transit, req.currency, "in-transit").delta += req.amount;
			const id = randomUUID();
			const row: TransferRow = {
				owner_id: req.payer,
				id,
				kind: "transfer",
				from_id: req.payer,
				to_id: req.payee,
				from_region: region,
				to_region: req.payeeHome,
				amount: req.amount.toString(),
				currency: req.currency,
				memo: req.memo,
				status: local ? "completed" : "pending",
				reason: null,
				operator_id: null,
				idempotency_key: req.idempotencyKey,
				request_hash: req.requestHash,
				created_at: now,
				completed_at: local ? now : null
			};
			transfers.push(row);
			if (local) transfers.push({ ...row, owner_id: req.payee, idempotency_key: null, request_hash: null });
			entries.push(
				entry(id, req.payer, req.currency, -req.amount, "transfer", now),
				entry(id, local ? req.payee : transit, req.currency, req.amount, "transfer", now)
			);
			if (local) outbox.push(receivedNotice(id, req.payee, req.payer, req.amount.toString(), req.currency, region));
			else {
				outbox.push(creditRequest(id, req, region, req.payeeHome, now));
			}
			if (keyOf) made.set(keyOf, row);
			decisions[i] = { kind: "done", outcome: { row, replayed: false, queued: !local } };
		}
		const changed = [...accounts.entries()].filter(([, a]) => a.delta !== 0n);
		if (changed.length) {
			const values = sql.join(
				changed.map(([k, a]) => {
					const [owner, currency] = k.split("\u0000") as [string, string];
					return sql`(${owner}, ${currency}, ${a.kind}, ${a.delta}, ${0n}, ${now})`;
				})
			);
			// Net changes, added: an account another batch opened meanwhile keeps what that batch put in.
			if (dialect === "mysql")
				await sql`insert into money_accounts (owner_id, currency, kind, balance, held, created_at) values ${values}
					on duplicate key update balance = balance + values(balance)`.execute(trx);
			else
				await sql`insert into money_accounts (owner_id, currency, kind, balance, held, created_at) values ${values}
					on conflict (owner_id, currency) do update set balance = balance + excluded.balance`.execute(trx);
		}
		if (transfers.length)
			await trx
				.insertInto("money_transfers")
				.values(transfers.map(t => ({ ...t, amount: BigInt(t.amount) })))
				.execute();
		if (entries.length) await trx.insertInto("money_entries").values(entries).execute();
		if (outbox.length) await trx.insertInto("money_outbox").values(outbox).execute();
		return decisions;
	}
}
