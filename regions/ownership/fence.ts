import { sql } from "kysely";
import type { Kysely, Transaction } from "kysely";
import type { HomeEntry } from "../directory/entries.ts";
import { MoveFencedError, UserMovingError, UserNotFoundError, WrongRegionError } from "../errors.ts";
import { runInScope, scopeOf, unscoped } from "../stores/scoped-db.ts";
import type { Ownership, OwnershipRecords } from "./records.ts";

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
 */

export interface WriteFenceOptions {
	region: string;
	records: OwnershipRecords;
	/** The directory's origin (never a mirror): asked only when this region's row cannot decide. */
	authoritative: (userId: string) => Promise<HomeEntry | undefined>;
	/** How long a write for a frozen (moving) user waits for the move before USER_MOVING. */
	movingWaitMs?: number;
}

/** MySQL: deadlock found / lock wait timeout; the statement (or transaction) was rolled back, nothing applied. */
const LOCK_CONFLICTS = new Set([1213, 1205]);
const LOCK_RETRIES = 3;

export function isLockConflict(err: unknown): boolean {
	return LOCK_CONFLICTS.has((err as { errno?: number }).errno ?? 0);
}

/** A deadlock's victim: InnoDB rolled its whole transaction back (a lock wait timeout undoes only the statement). */
function isDeadlock(err: unknown): boolean {
	return (err as { errno?: number }).errno === 1213;
}

class Frozen extends UserMovingError {}

export class WriteFence {
	private readonly region: string;
	private readonly records: OwnershipRecords;
	private readonly base: Kysely<any>;
	private readonly authoritative: (userId: string) => Promise<HomeEntry | undefined>;
	private readonly movingWaitMs: number;

	constructor(opts: WriteFenceOptions) {
		this.region = opts.region;
		this.records = opts.records;
		this.base = unscoped(opts.records.store.db);
		this.authoritative = opts.authoritative;
		this.movingWaitMs = opts.movingWaitMs ?? 1000;
	}

	/**
	 * Runs `fn` as a write of `userId`'s data that commits only while this region owns the user.
	 * `callerEpoch`: the epoch the caller routed by; an older one is refused (WRONG_REGION) so the
	 * caller heals. Refusals happen before `fn` runs; a frozen user is waited for, bounded.
	 */
	async run<T>(userId: string, callerEpoch: number | undefined, fn: () => Promise<T>): Promise<T> {
		const joined = scopeOf(this.base);
		// A write made while another is open on this node joins its transaction (SQLite has one connection).
		if (joined) {
			if (!joined.fenced.has(userId)) {
				await this.check(joined.db, userId, callerEpoch);
				joined.fenced.add(userId);
			}
			return fn();
		}
		const deadline = Date.now() + this.movingWaitMs;
		for (let attempt = 1; ; attempt++) {
			let running = false;
			try {
				return await this.commitEither(async trx => {
					await this.check(trx, userId, callerEpoch);
					running = true;
					return runInScope(this.base, { db: nestable(trx), fenced: new Set([userId]) }, fn);
				});
			} catch (err) {
				// Once `fn` ran, its calls and events happened: never run it twice, unless the database
				// chose it as a deadlock's victim, which rolls its whole transaction back (nothing applied).
				if (running && !(isDeadlock(err) && attempt < LOCK_RETRIES)) throw err;
				if (running) continue;
				if (err instanceof Frozen && Date.now() < deadline) {
					await new Promise(r => setTimeout(r, 50));
					continue;
				}
				if (isLockConflict(err) && attempt < LOCK_RETRIES) continue;
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

	/** Holds the user's row (shared) for the rest of `trx`, or throws why this region may not write. */
	private async check(trx: Kysely<any>, userId: string, callerEpoch: number | undefined): Promise<void> {
		for (let round = 0; round < 3; round++) {
			const row = await this.records.read(trx, userId, "share");
			if (row?.state === "active" && (callerEpoch === undefined || callerEpoch <= row.epoch)) {
				if (callerEpoch !== undefined && callerEpoch < row.epoch) throw new WrongRegionError(userId, this.region, row.epoch);
				return;
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
						throw new MoveFencedError(userId, moveId, `this region's ownership row is ${row ? `${row.state} (move ${row.moveId ?? "none"})` : "absent"}, not ${state} for this move`);
					running = true;
					return runInScope(this.base, { db: nestable(trx), fenced: new Set() }, fn);
				});
			} catch (err) {
				if (!running && isLockConflict(err) && attempt < LOCK_RETRIES) continue;
				throw err;
			}
		}
	}
}

let savepoints = 0;

/** The transaction as a service's query builder: `transaction().execute(fn)` inside it runs `fn` in a savepoint. */
function nestable(trx: Transaction<any>): Kysely<any> {
	const facade: Kysely<any> = new Proxy(trx, {
		get(target, prop) {
			if (prop === "transaction") return () => savepoint(target, facade);
			const value = Reflect.get(target, prop, target) as unknown;
			return typeof value === "function" ? value.bind(target) : value;
		}
	});
	return facade;
}

function savepoint(trx: Transaction<any>, facade: Kysely<any>) {
	const builder = {
		setIsolationLevel: () => builder,
		setAccessMode: () => builder,
		async execute<T>(fn: (db: Kysely<any>) => Promise<T>): Promise<T> {
			const name = sql.raw(`eh_sp_${++savepoints}`);
			await sql`savepoint ${name}`.execute(trx);
			try {
				const result = await fn(facade);
				await sql`release savepoint ${name}`.execute(trx);
				return result;
			} catch (err) {
				await sql`rollback to savepoint ${name}`.execute(trx).catch(() => undefined);
				throw err;
			}
		}
	};
	return builder;
}

const fences = new WeakMap<object, WriteFence>();

export function attachFence(broker: object, fence: WriteFence): void {
	fences.set(broker, fence);
}

/** The fence of the region `broker` runs in: every node with region stores has one. */
export function fenceOf(broker: { nodeID: string }): WriteFence {
	const fence = fences.get(broker);
	if (!fence) throw new Error(`broker ${broker.nodeID} has no write fence (not a region node)`);
	return fence;
}
