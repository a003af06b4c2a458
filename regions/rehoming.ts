import { randomUUID } from "node:crypto";
import type { HomeEntry } from "./directory/entries.ts";
import { USER_PREFIX, userKey } from "./directory/entries.ts";
import type { HomeDirectory } from "./directory/home-directory.ts";
import type { DirectoryEntry } from "./directory/store.ts";
import { DirectoryError } from "./directory/store.ts";
import { MoveFailedError, MoveInProgressError, RegionUnavailableError, ResidencyViolationError, UserNotFoundError } from "./errors.ts";
import { announceHome } from "./home-announcements.ts";
import type { HandoverStep } from "./ownership/handover.ts";
import type { Ownership } from "./ownership/records.ts";
import type { RegionRuntime } from "./runtime/region-runtime.ts";

/**
 * The journal of one move, kept in the directory beside the user (`move.<userId>`), so whoever
 * takes over a crashed move knows how far it got: a copy in progress is rolled back, a completed
 * copy or a flipped home is finished.
 */
export interface MoveRecord {
	moveId: string;
	userId: string;
	from: string;
	to: string;
	step: "moving" | "copied" | "flipped";
	/** The user's epoch before the move; the new home gets epoch + 1. */
	epoch: number;
	/** Services holding the user's rows, fixed when the move starts: copy and delete use the same list. */
	participants: string[];
	owner: string;
	heartbeat: number;
	startedAt: number;
}

export type MoveOutcome = "moved" | "rolled-back" | "finished";

export interface MoverOptions {
	/** The node's region handle: its broker, region, directory and the way to every other region. */
	runtime: RegionRuntime;
	/**
	 * The services holding per-user data, as the deployment declares them (not whoever answers
	 * now): each is copied, and one that cannot be reached in either region fails the move.
	 */
	participants: string[] | (() => Promise<string[]>);
	/** A pause after the old home is frozen: tests stretch it to crash a mover mid-move. */
	settleMs?: number;
	/** A move whose owner has not written its journal for this long is taken over. */
	staleMs?: number;
	/** How often the directory's origin is scanned for users left `moving` without a journal. */
	orphanScanMs?: number;
	/** `cause`: why a move was rolled back. */
	onOutcome?: (outcome: MoveOutcome, record: MoveRecord, cause?: string) => void;
}

export const moveKey = (userId: string) => `move.${userId}`;
const MOVE_PREFIX = "move.";
const AUTHORITATIVE = { authoritative: true } as const;
const DISCOVERY_MS = 2000;

/**
 * This mover's hold on a journal: every write is compare-and-set on the revision it last wrote,
 * and a heartbeat keeps it fresh during long steps. A refused write means another node took the
 * move over; from then on this mover touches nothing. `stop` ends the heartbeat: whoever drives
 * a move stops it on every way out, so a journal left behind goes quiet and the sweep takes it.
 */
class JournalLease {
	record: MoveRecord;
	private revision: number;
	private readonly store: HomeDirectory["store"];
	private chain: Promise<unknown> = Promise.resolve();
	private timer: NodeJS.Timeout | undefined;
	lost = false;

	constructor(store: HomeDirectory["store"], entry: DirectoryEntry<MoveRecord>, heartbeatMs: number) {
		this.store = store;
		this.record = entry.value;
		this.revision = entry.revision;
		this.timer = setInterval(() => void this.write({}).catch(() => undefined), heartbeatMs);
		this.timer.unref();
	}

	/** Writes the journal (with a fresh heartbeat); rejects once the lease is lost. */
	write(patch: Partial<MoveRecord>): Promise<void> {
		const next = this.chain.then(async () => {
			this.check();
			const record = { ...this.record, ...patch, heartbeat: Date.now() };
			try {
				this.revision = await this.store.update(moveKey(record.userId), record, this.revision);
				this.record = record;
			} catch (err) {
				if (err instanceof DirectoryError && err.code === "REVISION_MISMATCH") this.lost = true;
				throw err;
			}
		});
		this.chain = next.catch(() => undefined);
		return next;
	}

	check(): void {
		if (this.lost) throw new Error("another node took the move over");
	}

	/** Deletes the journal: the move is over. */
	async end(): Promise<void> {
		this.stop();
		await this.chain;
		this.check();
		await this.store.delete(moveKey(this.record.userId), this.revision);
	}

	stop(): void {
		clearInterval(this.timer);
		this.timer = undefined;
	}
}

/**
 * Rehoming. Mark the user moving in the directory → freeze the old home's ownership row (waits
 * for the user's writes in flight there; none commits after) → the new home expects the user
 * (`incoming`) → every declared participant copies the user's rows → verify counts → flip the
 * directory (compare-and-set on the origin: epoch + 1, new region) → the new home claims the
 * user, the old home releases it and deletes its rows. Before the flip any failure rolls back;
 * after it only finishing is left. One journal (`move.<userId>`) holds the move's progress and
 * its lease; the node holding the lease is the only one acting, and whoever drives a move (its
 * starter, or the recovery sweep after the starter went quiet) stops the heartbeat on every
 * way out. The mover never sees a table: participants implement the `move.*` actions.
 */
export class Mover {
	private readonly opts: Required<Omit<MoverOptions, "onOutcome">> & Pick<MoverOptions, "onOutcome">;
	private sweeper: NodeJS.Timeout | undefined;
	private unlisten: (() => void) | undefined;
	/** Each move journal's last heartbeat, as the change feed and the last listing told this node. */
	private readonly heartbeats = new Map<string, number>();

	constructor(opts: MoverOptions) {
		this.opts = { settleMs: 0, staleMs: 5000, orphanScanMs: 10 * 60_000, ...opts };
	}

	private get runtime(): RegionRuntime {
		return this.opts.runtime;
	}

	private get store() {
		return this.runtime.directory.store;
	}

	/** Moves `userId` to region `to`; resolves once the move is complete (or rejects after rolling back). */
	async move(userId: string, to: string): Promise<MoveRecord> {
		return (await this.start(userId, to)).done;
	}

	/**
	 * Begins a move: a refusal (unknown region or user, residency, a move in progress, a declared
	 * participant not reachable) rejects here; once the user is marked moving, `done` settles as
	 * `move` does.
	 */
	async start(userId: string, to: string): Promise<{ record: MoveRecord; done: Promise<MoveRecord> }> {
		const { regions } = this.runtime;
		const target = regions.find(r => r.id === to);
		if (!target) throw new DirectoryError("INVALID_KEY", `unknown region "${to}"`);
		const entry = await this.runtime.directory.entry(userId);
		if (!entry) throw new UserNotFoundError(userId);
		const from = regions.find(r => r.id === entry.value.region)!;
		if (entry.value.state === "moving") throw new MoveInProgressError(userId);
		if (from.id === to) {
			const record = this.journal(userId, from.id, to, entry.value.epoch, "flipped", []);
			return { record, done: Promise.resolve(record) };
		}
		// A pinned user stays within its jurisdiction: regions that pin at least one of the same countries.
		if (entry.value.pinned && !target.residency.some(c => from.residency.includes(c))) throw new ResidencyViolationError(userId, from.id, to);
		const declared = this.opts.participants;
		const participants = [...(Array.isArray(declared) ? declared : await declared())].sort();
		await this.reachable(from.id, to, participants);

		const record = this.journal(userId, from.id, to, entry.value.epoch, "moving", participants);
		let recordRevision: number;
		try {
			recordRevision = await this.store.create(moveKey(userId), record);
		} catch (err) {
			if (err instanceof DirectoryError && err.code === "KEY_EXISTS") throw new MoveInProgressError(userId);
			throw err;
		}
		try {
			await this.store.update(userKey(userId), { ...entry.value, state: "moving" } satisfies HomeEntry, entry.revision);
		} catch (err) {
			await this.store.delete(moveKey(userId), recordRevision).catch(() => undefined);
			if (err instanceof DirectoryError && err.code === "REVISION_MISMATCH") throw new MoveInProgressError(userId);
			throw err;
		}
		return { record, done: this.drive({ value: record, revision: recordRevision, key: moveKey(userId) }) };
	}

	/**
	 * Runs a journalled move from wherever it stands to its end: the one place a move's lifecycle
	 * is decided. A journal still `moving` is copied by its starter; one taken over in that step
	 * (`undo`) may hold a partial copy and is rolled back.
	 */
	private async drive(current: DirectoryEntry<MoveRecord>, undo = false): Promise<MoveRecord> {
		const lease = new JournalLease(this.store, current, Math.max(50, Math.floor(this.opts.staleMs / 3)));
		const resumed = current.value.step !== "moving";
		try {
			if (undo && lease.record.step === "moving") {
				await this.rollBack(lease);
				this.opts.onOutcome?.("rolled-back", lease.record, "its mover stopped during the copy");
				return lease.record;
			}
			await this.advance(lease);
			this.opts.onOutcome?.(resumed ? "finished" : "moved", lease.record);
			return lease.record;
		} catch (err) {
			const failedAt = lease.record.step;
			const cause = (err as Error).message;
			// Lost the journal: its new owner finishes or undoes the move. Flipped: only finishing is left.
			if (lease.lost || failedAt === "flipped" || (await this.flipped(lease.record)))
				throw new MoveFailedError(lease.record.userId, failedAt, `${cause}; left to the recovery sweep`);
			try {
				await this.rollBack(lease);
			} catch (undoErr) {
				throw new MoveFailedError(
					lease.record.userId,
					failedAt,
					`${cause}; rolling back failed too (${(undoErr as Error).message}), left to the recovery sweep`
				);
			}
			this.opts.onOutcome?.("rolled-back", lease.record, cause);
			throw new MoveFailedError(lease.record.userId, failedAt, cause);
		} finally {
			lease.stop();
		}
	}

	private async advance(lease: JournalLease): Promise<void> {
		const rec = () => lease.record;
		if (rec().step === "moving") {
			const { userId, from, to, epoch, moveId } = rec();
			// The authoritative mark, before any copy: from here on no write of the user commits in the old home.
			await this.handover(from, userId, "freeze", epoch, moveId);
			if (this.opts.settleMs) await sleep(this.opts.settleMs);
			lease.check();
			await this.handover(to, userId, "receive", epoch + 1, moveId);
			await this.copy(lease);
			await lease.write({ step: "copied" });
		}
		if (rec().step === "copied") {
			lease.check();
			await this.flip(rec());
			await lease.write({ step: "flipped" });
		}
		const { userId, from, to, epoch, moveId, participants } = rec();
		await this.handover(to, userId, "claim", epoch + 1, moveId);
		await this.handover(from, userId, "release", epoch + 1, moveId);
		for (const name of participants) await this.callIn(from, `${name}.move.delete`, { userId, moveId });
		await lease.end();
	}

	/** Copies every participant's rows, and checks both homes hold the same count afterwards. */
	private async copy(lease: JournalLease): Promise<void> {
		const { userId, from, to, participants, moveId } = lease.record;
		for (const name of participants) {
			lease.check();
			// Bounded by each participant's own export and import timeout (mixins/move-participant.mixin.ts), not a
			// mover's guess: files take minutes, rows seconds, and the journal's heartbeat runs meanwhile.
			const rows = await this.callIn<unknown[]>(from, `${name}.move.export`, { userId });
			await this.callIn(to, `${name}.move.import`, { userId, moveId, rows });
			const [there, here] = await Promise.all([
				this.callIn<number>(to, `${name}.move.count`, { userId }),
				this.callIn<number>(from, `${name}.move.count`, { userId })
			]);
			if (there !== rows.length || here !== rows.length)
				throw new Error(`${name}: ${rows.length} rows exported, ${here} now in ${from}, ${there} imported into ${to}`);
		}
	}

	/** Compare-and-set on the origin's entry, never a mirror's copy of it. */
	private async flip(record: MoveRecord): Promise<void> {
		const entry = await this.runtime.directory.entry(record.userId);
		// A mover that died between the flip and its journal write left "copied": the flip is done.
		if (hasFlipped(entry, record)) return;
		if (!entry || entry.value.region !== record.from || entry.value.epoch !== record.epoch) throw new Error("the directory entry changed during the move");
		const home: HomeEntry = { ...entry.value, region: record.to, epoch: record.epoch + 1, state: "active" };
		const revision = await this.store.update(userKey(record.userId), home, entry.revision);
		this.announce(record.userId, home, revision);
	}

	private announce(userId: string, home: HomeEntry, revision: number): void {
		announceHome(this.runtime, { userId, home, revision });
	}

	/** Whether the origin says this move flipped; false when it cannot say (then rolling back will find out). */
	private async flipped(record: MoveRecord): Promise<boolean> {
		const entry = await this.runtime.directory.entry(record.userId).catch(() => undefined);
		return hasFlipped(entry, record);
	}

	/**
	 * Undoes a move that has not flipped. The directory goes back first (compare-and-set on the
	 * origin), so no flip of this move can succeed after it; then the old home thaws, and the
	 * new home gives up the user and deletes what this move imported. A failure leaves the
	 * journal to the sweep, which repeats the (idempotent) steps.
	 */
	private async rollBack(lease: JournalLease): Promise<void> {
		// Confirm the journal is still ours before touching anything: only its owner flips or undoes.
		await lease.write({});
		const { userId, to, from, epoch, moveId, participants } = lease.record;
		for (let attempt = 1; ; attempt++) {
			const entry = await this.runtime.directory.entry(userId);
			if (hasFlipped(entry, lease.record)) throw new Error("the move flipped: it can only be finished");
			if (entry?.value.state !== "moving" || entry.value.region !== from || entry.value.epoch !== epoch) break;
			try {
				const home: HomeEntry = { ...entry.value, state: "active" };
				this.announce(userId, home, await this.store.update(userKey(userId), home, entry.revision));
				break;
			} catch (err) {
				if (!(err instanceof DirectoryError && err.code === "REVISION_MISMATCH") || attempt >= 3) throw err;
			}
		}
		await this.handover(from, userId, "thaw", epoch, moveId);
		const there = await this.handover(to, userId, "abandon", epoch + 1, moveId);
		// Only rows this move imported are deleted: its imports committed only while the row named it.
		if (there?.state === "gone" && there.moveId === moveId) for (const name of participants) await this.callIn(to, `${name}.move.delete`, { userId, moveId });
		await lease.end();
	}

	/** Both regions must have every declared participant (and sv-region, for the handover) known and available. */
	private async reachable(from: string, to: string, participants: string[]): Promise<void> {
		for (const region of [from, to]) {
			const actions = ["sv-region.handover", ...participants.map(p => `${p}.move.${region === from ? "export" : "import"}`)];
			const missing = () => actions.filter(a => !registry?.getActionEndpoints(a)?.hasAvailable());
			const bus = await this.runtime.bus(region).catch(() => undefined);
			const registry = bus?.registry;
			// A new link hears of the region's services within moments.
			if (bus && bus !== this.runtime.broker && missing().length)
				await bus
					.waitForServices(
						actions.map(a => a.slice(0, a.indexOf("."))),
						DISCOVERY_MS,
						20
					)
					.catch(() => undefined);
			const absent = missing();
			if (absent.length) throw new RegionUnavailableError(region, 5, `not running there now: ${absent.map(a => a.slice(0, a.indexOf("."))).join(", ")}`);
		}
	}

	private handover(region: string, userId: string, step: HandoverStep, epoch: number, moveId: string): Promise<Ownership | undefined> {
		return this.callIn(region, "sv-region.handover", { region, userId, step, epoch, moveId });
	}

	private callIn<T>(region: string, action: string, params: unknown, timeout?: number): Promise<T> {
		// A move's calls are each idempotent, and the journal decides what happens after a failure: no broker retries.
		return this.runtime.call<T>(region, action, params, timeout === undefined ? { retries: 0 } : { retries: 0, timeout });
	}

	private journal(userId: string, from: string, to: string, epoch: number, step: MoveRecord["step"], participants: string[]): MoveRecord {
		const now = Date.now();
		return { moveId: randomUUID(), userId, from, to, step, epoch, participants, owner: this.runtime.broker.nodeID, heartbeat: now, startedAt: now };
	}

	/** The journal of the user's move in progress, if any. */
	async status(userId: string): Promise<MoveRecord | undefined> {
		return (await this.store.get<MoveRecord>(moveKey(userId), AUTHORITATIVE))?.value;
	}

	/** Takes over and ends every move whose owner went quiet (crashed): finish if copied or flipped, else roll back. */
	async recover(): Promise<number> {
		let recovered = 0;
		for (let after = 0; ; ) {
			const page = await this.store.list<MoveRecord>(MOVE_PREFIX, { afterRevision: after, limit: 100, ...AUTHORITATIVE });
			for (const entry of page.entries) {
				this.heartbeats.set(entry.key, entry.value.heartbeat);
				if (Date.now() - entry.value.heartbeat < this.opts.staleMs) continue;
				let claimed: DirectoryEntry<MoveRecord>;
				try {
					const value = { ...entry.value, owner: this.runtime.broker.nodeID, heartbeat: Date.now() };
					claimed = { ...entry, value, revision: await this.store.update(entry.key, value, entry.revision) };
				} catch {
					continue; // another node claimed it first
				}
				await this.drive(claimed, true).catch(err =>
					this.runtime.broker.logger.warn(`recovering the move of ${claimed.value.userId} failed: ${(err as Error).message}`)
				);
				recovered++;
			}
			if (page.next === null) return recovered;
			after = page.next;
		}
	}

	/**
	 * Users the origin says are `moving` with no journal: a move that cannot be resumed, so the
	 * user would refuse writes for good. Each is set active again where it is. Scans the whole
	 * origin: the change feed (see startRecovery) finds them sooner; this is the net below it.
	 */
	async recoverOrphans(): Promise<number> {
		let reset = 0;
		for (let after = 0; ; ) {
			const page = await this.store.list<HomeEntry>(USER_PREFIX, { afterRevision: after, limit: 1000, ...AUTHORITATIVE });
			for (const entry of page.entries) if (entry.value.state === "moving" && (await this.resetOrphan(entry.key.slice(USER_PREFIX.length)))) reset++;
			if (page.next === null) return reset;
			after = page.next;
		}
	}

	/**
	 * Sets `userId` active again if the origin says moving and no journal exists, looked at twice
	 * (a move creates its journal before it marks the user, and deletes it only once the user is
	 * active again, so a moving user without one is no move's).
	 */
	private async resetOrphan(userId: string): Promise<boolean> {
		if (await this.store.get(moveKey(userId), AUTHORITATIVE)) return false;
		const now = await this.runtime.directory.entry(userId);
		if (now?.value.state !== "moving" || (await this.store.get(moveKey(userId), AUTHORITATIVE))) return false;
		try {
			await this.store.update(userKey(userId), { ...now.value, state: "active" } satisfies HomeEntry, now.revision);
		} catch {
			return false; // changed meanwhile: whoever changed it owns it
		}
		this.runtime.broker.logger.warn(`user ${userId} was left moving without a move journal: active again in ${now.value.region}`);
		return true;
	}

	/**
	 * Looks for abandoned moves, so a crashed mover never leaves a user moving. Listing the journal
	 * costs a JetStream consumer, so it is not done every tick: the change feed tells this node each
	 * journal's heartbeat, and a tick lists (and claims) only when one has gone quiet, or when the
	 * feed is not running, or every `fullScanMs` anyway. Orphans (moving, no journal) are looked
	 * for at start and every `orphanScanMs`.
	 */
	startRecovery(intervalMs = 2000, fullScanMs = 30_000): void {
		const unlistenMoves = this.runtime.directory.listen(MOVE_PREFIX, change => {
			const record = change.value as MoveRecord | undefined;
			if (record) this.heartbeats.set(change.key, record.heartbeat);
			else this.heartbeats.delete(change.key);
		});
		// Users the feed last saw moving, and since when: one moving for long is checked for a journal.
		const moving = new Map<string, number>();
		const unlistenUsers = this.runtime.directory.listen(USER_PREFIX, change => {
			const userId = change.key.slice(USER_PREFIX.length);
			if ((change.value as HomeEntry | undefined)?.state === "moving") {
				if (!moving.has(userId)) moving.set(userId, Date.now());
			} else moving.delete(userId);
		});
		this.unlisten = () => {
			unlistenMoves();
			unlistenUsers();
		};
		let lastScan = 0;
		// Spread over the nodes: every sv-region node scans, none in step with the others.
		let lastOrphanScan = Date.now() - this.opts.orphanScanMs * Math.random();
		const due = () => {
			const now = Date.now();
			if (!this.runtime.directory.watching || now - lastScan >= fullScanMs) return true;
			for (const heartbeat of this.heartbeats.values()) if (now - heartbeat >= this.opts.staleMs) return true;
			return false;
		};
		const tick = async () => {
			if (due()) {
				lastScan = Date.now();
				await this.recover();
			}
			for (const [userId, since] of moving)
				if (Date.now() - since >= 2 * this.opts.staleMs && !this.heartbeats.has(moveKey(userId))) {
					moving.delete(userId);
					await this.resetOrphan(userId);
				}
			if (Date.now() - lastOrphanScan >= this.opts.orphanScanMs) {
				lastOrphanScan = Date.now();
				await this.recoverOrphans();
			}
		};
		const loop = () => {
			void tick()
				.catch(err => this.runtime.broker.logger.warn(`move recovery failed: ${(err as Error).message}`))
				.finally(() => {
					if (this.sweeper) this.sweeper = setTimeout(loop, intervalMs);
				});
		};
		this.sweeper = setTimeout(loop, 0);
	}

	stopRecovery(): void {
		clearTimeout(this.sweeper);
		this.sweeper = undefined;
		this.unlisten?.();
		this.unlisten = undefined;
	}
}

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

/** Whether the directory entry shows `record`'s flip: the new region, at the move's epoch + 1. */
function hasFlipped(entry: DirectoryEntry<HomeEntry> | undefined, record: MoveRecord): boolean {
	return entry?.value.region === record.to && entry.value.epoch === record.epoch + 1;
}
