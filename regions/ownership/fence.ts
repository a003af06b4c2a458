import type { Kysely, Transaction } from "kysely";
import type { HomeEntry } from "../directory/entries.ts";
import { MoveFencedError, UserMovingError, UserNotFoundError, WriteConflictError, WrongRegionError } from "../errors.ts";
import { isDeadlock, isLockConflict } from "../stores/lock-errors.ts";
import { runInScope, scopeOf, unscoped } from "../stores/scoped-db.ts";
import type { Ownership, OwnershipRecords } from "./records.ts";
import { nestable } from "./savepoints.ts";
import { WriteBatches } from "./write-batch.ts";

export { isLockConflict } from "../stores/lock-errors.ts";

/**
 * Storage-level fencing. A home-routed write runs inside one transaction of the region's
 * database that first reads the region's ownership row of the user under a shared lock, and
 * commits only if that row says this region owns the user. A move freezes the row (an exclusive
 * lock: it waits for every fenced write in flight, then no new one passes) before it copies
 * anything. So whatever the caches and mirrors say, a write either commits before the freeze and
 * is copied, or is refused: never acknowledged by an old home and then lost.
 *
 * Every query on the region's database made while the write runs (the service's, and those of
 * calls it makes on this node) joins the fenced transaction (regions/stores/scoped-db.ts).
 * Concurrent writes share one such transaction (write-batch.ts): the fence's own statements
 * would otherwise cost as much as a one-statement write.
 */

export interface WriteFenceOptions {
	region: string;
	records: OwnershipRecords;
	/** The directory's origin (never a mirror): asked only when this region's row cannot decide. */
	authoritative: (userId: string) => Promise<HomeEntry | undefined>;
	/** How long a write for a frozen (moving) user waits for the move before USER_MOVING. */
	movingWaitMs?: number;
	/** Batches of writes in progress at once, each on a connection (default 4; SQLite: 1, its one connection). */
	lanes?: number;
	/** Most writes in one batch (default 32). */
	batchSize?: number;
	/** How long a batch waits for a handler before it goes on alone (default 20 ms): the bound a slow write holds the others' answers. */
	batchHoldMs?: number;
}

/** Runs of a write whose transaction the database chose as a deadlock's victim. */
const LOCK_RETRIES = 5;

/** A short, growing, jittered pause before running a conflict's victim again, so the same two writes do not meet again in step. */
function conflictPause(attempt: number): Promise<void> {
	return new Promise(resolve => setTimeout(resolve, Math.random() * 10 * 2 ** attempt));
}
const LANES = 4;
const BATCH_SIZE = 32;
const BATCH_HOLD_MS = 20;

class Frozen extends UserMovingError {}

export class WriteFence {
	private readonly region: string;
	private readonly records: OwnershipRecords;
	private readonly base: Kysely<any>;
	private readonly authoritative: (userId: string) => Promise<HomeEntry | undefined>;
	private readonly movingWaitMs: number;
	readonly batches: WriteBatches;

	constructor(opts: WriteFenceOptions) {
		this.region = opts.region;
		this.records = opts.records;
		this.base = unscoped(opts.records.store.db);
		this.authoritative = opts.authoritative;
		this.movingWaitMs = opts.movingWaitMs ?? 1000;
		const sqlite = opts.records.store.dialect === "sqlite";
		this.batches = new WriteBatches({
			region: this.region,
			records: this.records,
			base: this.base,
			lanes: sqlite ? 1 : (opts.lanes ?? LANES),
			maxSize: opts.batchSize ?? BATCH_SIZE,
			holdMs: opts.batchHoldMs ?? BATCH_HOLD_MS
		});
	}

	/**
	 * Runs `fn` as a write of `userId`'s data that commits only while this region owns the user.
	 * `callerEpoch`: the epoch the caller routed by; an older one is refused (WRONG_REGION) so the
	 * caller heals. Refusals happen before `fn` runs (but for the later statements of a write that
	 * left its batch, see write-batch.ts); a frozen user is waited for, bounded. `atomic`: the
	 * write never leaves its batch, so all its statements commit or roll back together.
	 */
	async run<T>(userId: string, callerEpoch: number | undefined, fn: () => Promise<T>, atomic = false): Promise<T> {
		const joined = scopeOf(this.base);
		// A write made while another is open on this node joins its transaction (SQLite has one connection).
		if (joined) {
			if (!joined.fenced.has(userId)) joined.fenced.set(userId, await this.check(joined.db, userId, callerEpoch));
			return fn();
		}
		for (let attempt = 1; ; attempt++) {
			const answer = await this.batches.submit(userId, callerEpoch, fn, atomic);
			switch (answer.kind) {
				case "done":
					return answer.value;
				case "failed":
					throw answer.error;
				case "alone":
					return this.runAlone(userId, callerEpoch, fn);
				case "again":
					if (attempt >= LOCK_RETRIES) throw new WriteConflictError(userId, attempt);
					await conflictPause(attempt);
			}
		}
	}

	/** A write whose ownership row its batch could not decide on: in a transaction of its own, the row settled with the origin first. */
	private async runAlone<T>(userId: string, callerEpoch: number | undefined, fn: () => Promise<T>): Promise<T> {
		const deadline = Date.now() + this.movingWaitMs;
		for (let attempt = 1; ; attempt++) {
			let running = false;
			try {
				return await this.commitEither(async trx => {
					const epoch = await this.check(trx, userId, callerEpoch);
					running = true;
					return runInScope(this.base, { db: nestable(trx), fenced: new Map([[userId, epoch]]) }, fn);
				});
			} catch (err) {
				// Once `fn` ran, its calls and events happened: never run it twice, unless the database
				// chose it as a deadlock's victim, which rolls its whole transaction back (nothing applied).
				if (running && isDeadlock(err)) {
					if (attempt >= LOCK_RETRIES) throw new WriteConflictError(userId, attempt);
					await conflictPause(attempt);
					continue;
				}
				if (running) throw err;
				if (err instanceof Frozen && Date.now() < deadline) {
					await new Promise(r => setTimeout(r, 50));
					continue;
				}
				// Refused before the handler ran: nothing of it was applied.
				if (isLockConflict(err)) {
					if (attempt >= LOCK_RETRIES) throw new WriteConflictError(userId, attempt);
					await conflictPause(attempt);
					continue;
				}
				throw err instanceof Frozen ? new UserMovingError(userId) : err;
			}
		}
	}

	/**
	 * One transaction around `body`. What the handler wrote before it threw is committed too, as
	 * it would be without the fence (each statement its own commit; a service's own
	 * `transaction()` inside is a savepoint that rolls back alone): the fence decides where a
	 * write may commit, not what the service's writes mean.
	 */
	private async commitEither<T>(body: (trx: Transaction<any>) => Promise<T>): Promise<T> {
		let failure: { err: unknown } | undefined;
		const value = await this.base.transaction().execute(async trx => {
			try {
				return await body(trx);
			} catch (err) {
				// Refused before the handler ran: nothing to keep; roll back.
				if (err instanceof WrongRegionError || err instanceof UserMovingError || err instanceof UserNotFoundError || err instanceof MoveFencedError) throw err;
				failure = { err };
				return undefined;
			}
		});
		if (failure) throw failure.err;
		return value as T;
	}

	/** Holds the user's row (shared) for the rest of `trx` and answers its epoch, or throws why this region may not write. */
	private async check(trx: Kysely<any>, userId: string, callerEpoch: number | undefined): Promise<number> {
		for (let round = 0; round < 3; round++) {
			const row = await this.records.read(trx, userId, "share");
			if (row?.state === "active" && (callerEpoch === undefined || callerEpoch <= row.epoch)) {
				if (callerEpoch !== undefined && callerEpoch < row.epoch) throw new WrongRegionError(userId, this.region, row.epoch);
				return row.epoch;
			}
			await this.settle(trx, userId, row);
		}
		throw new UserMovingError(userId);
	}

	/**
	 * The row does not say "active here": no row yet (a user never written here, or rows from
	 * before fencing), the row of a move that was rolled back, or of an older epoch. The origin
	 * decides; when it names this region, active, the row is brought in line with it (a
	 * compare-and-set on the row's version, which every freeze bumps).
	 */
	private async settle(trx: Kysely<any>, userId: string, row: Ownership | undefined): Promise<void> {
		const home = await this.authoritative(userId);
		if (!home) throw new UserNotFoundError(userId);
		if (home.region !== this.region) throw new WrongRegionError(userId, home.region, home.epoch);
		if (home.state === "moving" || (row && row.epoch > home.epoch)) throw new Frozen(userId);
		await this.records.write(trx, userId, { epoch: home.epoch, state: "active", moveId: null }, row);
	}

	/**
	 * Runs a move's own write of the user's rows here (an import while `incoming`, a delete of
	 * leftovers once `gone`) only while this region's row still names that move in that state: a
	 * late call of an abandoned attempt, or of a move taken over by another node, commits nothing.
	 */
	async runMove<T>(userId: string, moveId: string, state: "incoming" | "gone", fn: () => Promise<T>): Promise<T> {
		for (let attempt = 1; ; attempt++) {
			let running = false;
			try {
				return await this.commitEither(async trx => {
					// Exclusive: two calls of one move for one user (a retried import) run one after the other.
					const row = await this.records.read(trx, userId, "update");
					if (row?.state !== state || row.moveId !== moveId)
						throw new MoveFencedError(
							userId,
							moveId,
							`this region's ownership row is ${row ? `${row.state} (move ${row.moveId ?? "none"})` : "absent"}, not ${state} for this move`
						);
					running = true;
					return runInScope(this.base, { db: nestable(trx), fenced: new Map() }, fn);
				});
			} catch (err) {
				if (!running && isLockConflict(err) && attempt < LOCK_RETRIES) continue;
				throw err;
			}
		}
	}
}
