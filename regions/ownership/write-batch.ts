import type { CompiledQuery, DatabaseConnection, Kysely, QueryResult } from "kysely";
import { OutcomeUnknownError, UserMovingError, WrongRegionError } from "../errors.ts";
import { isDeadlock } from "../stores/lock-errors.ts";
import { runInScope } from "../stores/scoped-db.ts";
import type { SqlDialectName } from "../stores/sql.ts";
import type { Ownership, OwnershipRecords } from "./records.ts";
import { nestable } from "./savepoints.ts";
import { BEGIN, COMMIT, queryBuilderOver, SerialTransaction } from "./serial-transaction.ts";

/**
 * Group commit of fenced writes: the fence's own statements (BEGIN, the locking read of the
 * ownership row, COMMIT) cost as much as a one-statement write, so concurrent writes of a node
 * share them. A lane takes every write waiting (up to `maxSize`) as one batch: one transaction
 * that reads all their users' rows under a shared lock in one statement, runs the handlers
 * whose row says "active here" (their statements interleave on the batch's connection), and
 * commits once. No timer forms a batch: a lone write starts at once, and writes queue only
 * while every lane is busy. For each write, what the caller sees is what it saw alone:
 * - what a handler wrote before it threw commits, and the caller gets its error;
 * - a deadlock rolls the whole batch back: every handler of it is run again (at most
 *   `LOCK_RETRIES` times, counted by the fence), since nothing of theirs was applied;
 * - a COMMIT that fails reaches every member as OUTCOME_UNKNOWN;
 * - a write that opens its own `transaction()` while others share the batch (savepoints cannot
 *   interleave), or that still runs `holdMs` after the batch started (it must not hold the
 *   others' answers; a write alone in its batch stays, and only gives its lane up), leaves the batch: what it wrote so far commits with the batch, and its
 *   later statements run in a transaction of its own, opened only once the batch committed and
 *   after the ownership rows of its users were read again under a shared lock. If they no longer
 *   say "active" at the same epoch, its statements are refused: USER_MOVING if it had written
 *   nothing yet, else OUTCOME_UNKNOWN (part of it committed).
 * An `atomic` write (a ledger's debit and credit mean nothing apart) never leaves for its hold time:
 * its batch waits for it, so all its statements commit together or not at all.
 * Every statement of a write thus commits in a transaction that held its users' rows "active":
 * the fence's argument holds per transaction, whether it carries one write or many.
 */

/**
 * Where a batched write of `userId` goes, by the user's ownership row read in the batch: into the
 * batch when the row is active here at the caller's epoch (or the caller named none); refused with
 * WRONG_REGION when the caller's epoch is older than the row's (the user moved away and back); else
 * through the fence alone, which waits out a move or learns a newer epoch. Every group commit
 * (this file's, sv-money's transfers, sv-notice's sends) decides by this one rule.
 */
export function placeInBatch(
	row: Ownership | undefined,
	callerEpoch: number | undefined,
	userId: string,
	region: string
): { kind: "member"; epoch: number } | { kind: "alone" } | { kind: "failed"; error: WrongRegionError } {
	if (row?.state !== "active" || (callerEpoch !== undefined && callerEpoch > row.epoch)) return { kind: "alone" };
	if (callerEpoch !== undefined && callerEpoch < row.epoch) return { kind: "failed", error: new WrongRegionError(userId, region, row.epoch) };
	return { kind: "member", epoch: row.epoch };
}

export interface WriteBatchesOptions {
	region: string;
	records: OwnershipRecords;
	/** The region database, past any open transaction. */
	base: Kysely<any>;
	/** Batches in progress at once, each on its own connection (SQLite has one: 1). */
	lanes: number;
	/** Most writes in one batch. */
	maxSize: number;
	/** How long a batch waits for its handlers before those still running leave it. */
	holdMs: number;
}

/** What a batch did with one write. */
export type BatchAnswer<T> =
	| { kind: "done"; value: T }
	| { kind: "failed"; error: unknown }
	/** Its ownership row could not decide (absent, moving, another epoch): nothing ran; the fence runs it on its own. */
	| { kind: "alone" }
	/** A deadlock rolled its batch back after the handler ran: run it again (`error` if out of attempts). */
	| { kind: "again"; error: unknown };

interface Pending<T> {
	userId: string;
	callerEpoch: number | undefined;
	/** Never leaves the batch for running past the hold time: its statements commit together or not at all. */
	atomic: boolean;
	fn: () => Promise<T>;
	answer: (a: BatchAnswer<T>) => void;
}

type Outcome = { committed: true } | { again: unknown } | { failed: unknown };

const WRITE_LABEL = "a fenced write";
const noop = () => undefined;

export class WriteBatches {
	readonly opts: WriteBatchesOptions;
	readonly dialect: SqlDialectName;
	private readonly queue: Pending<any>[] = [];
	private busy = 0;
	/** Batches run, writes they carried, writes that left a batch: for benches and tests. */
	readonly stats = { batches: 0, writes: 0, left: 0 };

	constructor(opts: WriteBatchesOptions) {
		this.opts = opts;
		this.dialect = opts.records.store.dialect;
	}

	submit<T>(userId: string, callerEpoch: number | undefined, fn: () => Promise<T>, atomic = false): Promise<BatchAnswer<T>> {
		return new Promise(answer => {
			this.queue.push({ userId, callerEpoch, atomic, fn, answer });
			if (this.busy < this.opts.lanes) void this.lane();
		});
	}

	private async lane(): Promise<void> {
		this.busy++;
		let holding = true;
		// A batch past its hold time gives its lane up: a slow write keeps its connection, not the other writes waiting.
		const giveUp = () => {
			if (!holding) return;
			holding = false;
			this.busy--;
			if (this.queue.length && this.busy < this.opts.lanes) void this.lane();
		};
		try {
			// A connection per batch: on SQLite, a write that left a batch waits for the one connection in between.
			while (holding && this.queue.length)
				await this.opts.base.connection().execute(async conn => {
					const writes = this.queue.splice(0, this.opts.maxSize);
					if (writes.length) await new Batch(this, conn, writes, giveUp).run();
				});
		} catch {
			// No connection to be had: the waiting writes run alone and meet the database's error there.
			for (const write of this.queue.splice(0)) write.answer({ kind: "alone" });
		} finally {
			giveUp();
		}
	}

	/** A connection of its own for a write that left its batch, held until `release`. */
	lease(): Promise<{ conn: Kysely<any>; release: () => void }> {
		return new Promise((resolve, reject) => {
			this.opts.base
				.connection()
				.execute(conn => new Promise<void>(release => resolve({ conn, release })))
				.catch(reject);
		});
	}
}

class Batch {
	readonly owner: WriteBatches;
	readonly trx: SerialTransaction;
	readonly members: Member<any>[] = [];
	readonly outcome: Promise<Outcome>;
	holdExpired = false;
	private readonly writes: Pending<unknown>[];
	private running = 0;
	private inFlight = 0;
	private settle!: () => void;
	private readonly settled = new Promise<void>(resolve => (this.settle = resolve));
	private conclude!: (outcome: Outcome) => void;
	private readonly giveUpLane: () => void;

	constructor(owner: WriteBatches, conn: Kysely<any>, writes: Pending<unknown>[], giveUpLane: () => void) {
		this.owner = owner;
		this.giveUpLane = giveUpLane;
		this.trx = new SerialTransaction(conn);
		this.writes = writes;
		this.outcome = new Promise(resolve => (this.conclude = resolve));
	}

	async run(): Promise<void> {
		const { records, region, holdMs } = this.owner.opts;
		const begun = this.trx.executeQuery(BEGIN);
		const read = records.readMany(queryBuilderOver(this.trx, this.owner.dialect), [...new Set(this.writes.map(w => w.userId))], "share");
		let rows: Map<string, Ownership>;
		try {
			await begun;
			rows = await read;
		} catch {
			read.catch(noop);
			await this.trx.rollback().catch(noop);
			for (const write of this.writes) write.answer({ kind: "alone" });
			return;
		}
		for (const write of this.writes) {
			const place = placeInBatch(rows.get(write.userId), write.callerEpoch, write.userId, region);
			if (place.kind === "member") this.members.push(new Member(this, write, place.epoch));
			else write.answer(place);
		}
		if (!this.members.length) {
			await this.trx.rollback().catch(noop);
			return;
		}
		this.owner.stats.batches++;
		this.owner.stats.writes += this.members.length;
		this.running = this.members.length;
		const timer = setTimeout(() => this.expire(), holdMs);
		for (const member of this.members) member.start();
		await this.settled;
		clearTimeout(timer);
		await this.end();
	}

	/** A statement of a member still in the batch. */
	execute<R>(member: Member<any>, query: CompiledQuery): Promise<QueryResult<R>> {
		if (!isRead(query)) member.wrote = true;
		this.inFlight++;
		return this.trx.executeQuery<R>(query).finally(() => {
			this.inFlight--;
			this.check();
		});
	}

	/** A member ended or left: the batch ends once none runs in it and no statement is in flight. */
	left(): void {
		this.running--;
		this.check();
	}

	private check(): void {
		// Rolled back by a deadlock: nothing to wait for, every member runs again.
		if (this.trx.rolledBack !== undefined) for (const member of this.members) if (member.leave()) this.running--;
		if (this.running === 0 && this.inFlight === 0) this.settle();
	}

	/** Past the hold time, the handlers still running leave the batch; a lone one stays (it holds no other answer) but gives the lane up. */
	private expire(): void {
		this.holdExpired = true;
		this.giveUpLane();
		if (this.members.length > 1) for (const member of this.members) member.expire();
	}

	private async end(): Promise<void> {
		if (this.trx.rolledBack !== undefined) {
			this.conclude({ again: this.trx.rolledBack });
			await this.trx.rollback().catch(noop);
			return;
		}
		try {
			await this.trx.executeQuery(COMMIT);
			this.conclude({ committed: true });
		} catch (err) {
			this.conclude(isDeadlock(err) ? { again: err } : { failed: err });
			await this.trx.rollback().catch(noop);
		}
	}
}

class Member<T> implements DatabaseConnection {
	wrote = false;
	private state: "running" | "left" | "ended" = "running";
	private savepoints = 0;
	private readonly batch: Batch;
	private readonly write: Pending<T>;
	/** Users whose rows this write holds (its own, and those of writes it made on this node), with their epochs. */
	private readonly fenced: Map<string, number>;
	private result!: Promise<{ value: T } | { error: unknown }>;
	private own?: Promise<{ trx: SerialTransaction; release: () => void }>;

	constructor(batch: Batch, write: Pending<T>, epoch: number) {
		this.batch = batch;
		this.write = write;
		this.fenced = new Map([[write.userId, epoch]]);
	}

	start(): void {
		const db = nestable(queryBuilderOver(this, this.batch.owner.dialect), {
			opening: () => {
				if (this.batch.members.length > 1) this.detach();
				this.savepoints++;
			},
			closed: () => {
				if (--this.savepoints === 0 && this.batch.holdExpired && this.batch.members.length > 1 && !this.write.atomic) this.detach();
			}
		});
		let running: Promise<T>;
		try {
			running = runInScope(this.batch.owner.opts.base, { db, fenced: this.fenced }, this.write.fn);
		} catch (err) {
			running = Promise.reject(err);
		}
		this.result = running.then(
			value => ({ value }),
			error => ({ error })
		);
		void this.result.then(() => {
			const wasRunning = this.state === "running";
			this.state = "ended";
			if (wasRunning) this.batch.left();
		});
		void this.answer().then(this.write.answer, error => this.write.answer({ kind: "failed", error }));
	}

	/** True when it was running in the batch and no longer is. */
	leave(): boolean {
		if (this.state !== "running") return false;
		this.state = "left";
		this.batch.owner.stats.left++;
		return true;
	}

	expire(): void {
		if (this.savepoints === 0 && !this.write.atomic) this.detach();
	}

	executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
		if (this.state === "running") return this.batch.execute<R>(this, query);
		if (this.state === "ended") return Promise.reject(new Error(`a statement of the fenced write of user ${this.write.userId} came after it ended`));
		return this.ownTransaction().then(({ trx }) => trx.executeQuery<R>(query));
	}

	streamQuery(): never {
		throw new Error("streaming queries are not supported inside a fenced write");
	}

	private detach(): void {
		if (this.leave()) this.batch.left();
	}

	private ownTransaction() {
		return (this.own ??= this.openOwn());
	}

	/** Where a write that left its batch goes on: after the batch committed, with its users' rows held again. */
	private async openOwn(): Promise<{ trx: SerialTransaction; release: () => void }> {
		const outcome = await this.batch.outcome;
		if ("again" in outcome) throw outcome.again;
		if ("failed" in outcome) throw commitUnknown(this.write.userId, outcome.failed);
		const { records } = this.batch.owner.opts;
		const { conn, release } = await this.batch.owner.lease();
		const trx = new SerialTransaction(conn);
		try {
			await trx.executeQuery(BEGIN);
			const rows = await records.readMany(queryBuilderOver(trx, this.batch.owner.dialect), [...this.fenced.keys()], "share");
			for (const [userId, epoch] of this.fenced) {
				const row = rows.get(userId);
				if (row?.state !== "active" || row.epoch !== epoch)
					throw this.wrote
						? new OutcomeUnknownError(this.write.userId, WRITE_LABEL, `part of it committed, then this region's ownership of user ${userId} changed`)
						: new UserMovingError(userId);
			}
		} catch (err) {
			await trx.rollback().catch(noop);
			release();
			throw err;
		}
		return { trx, release };
	}

	/** The caller's answer, once the handler ended and the batch (and its own transaction, if it left) committed or failed. */
	private async answer(): Promise<BatchAnswer<T>> {
		const result = await this.result;
		const outcome = await this.batch.outcome;
		const own = await this.own?.catch(noop);
		if (!("committed" in outcome)) {
			if (own) await own.trx.rollback().catch(noop);
			own?.release();
			return "again" in outcome ? { kind: "again", error: outcome.again } : { kind: "failed", error: commitUnknown(this.write.userId, outcome.failed) };
		}
		if (own) {
			try {
				// A deadlock here undid only what it did alone: run again only if it wrote nothing in the batch.
				if (own.trx.rolledBack !== undefined) {
					await own.trx.rollback().catch(noop);
					if (!this.wrote) return { kind: "again", error: own.trx.rolledBack };
					return {
						kind: "failed",
						error: new OutcomeUnknownError(
							this.write.userId,
							WRITE_LABEL,
							`part of it committed, the rest was rolled back: ${(own.trx.rolledBack as Error).message}`
						)
					};
				}
				await own.trx.executeQuery(COMMIT);
			} catch (err) {
				await own.trx.rollback().catch(noop);
				return { kind: "failed", error: commitUnknown(this.write.userId, err) };
			} finally {
				own.release();
			}
		}
		return "value" in result ? { kind: "done", value: result.value } : { kind: "failed", error: result.error };
	}
}

function commitUnknown(userId: string, err: unknown): OutcomeUnknownError {
	return new OutcomeUnknownError(userId, WRITE_LABEL, `its commit failed: ${(err as Error).message}`);
}

/** Reads (a SELECT, locking or not) do not make a write partial when it is refused later. */
function isRead(query: CompiledQuery): boolean {
	return /^\s*select\b/i.test(query.sql);
}
