import { randomUUID } from "node:crypto";
import type { ServiceBroker } from "moleculer";
import { userKey } from "./directory/entries.ts";
import type { HomeEntry } from "./directory/entries.ts";
import type { HomeDirectory } from "./directory/home-directory.ts";
import { DirectoryError } from "./directory/store.ts";
import type { DirectoryEntry } from "./directory/store.ts";
import { MoveFailedError, MoveInProgressError, RegionUnavailableError, ResidencyViolationError, UserNotFoundError } from "./errors.ts";
import type { RegionLinks } from "./links.ts";
import type { RegionDefinition } from "./region.ts";

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
	broker: ServiceBroker;
	region: RegionDefinition;
	regions: RegionDefinition[];
	directory: HomeDirectory;
	links: RegionLinks;
	/** Wait after marking the user moving, so every node sees it before rows are copied. */
	settleMs?: number;
	/** A move whose owner has not written its journal for this long is taken over. */
	staleMs?: number;
	/** `cause`: why a move was rolled back. */
	onOutcome?: (outcome: MoveOutcome, record: MoveRecord, cause?: string) => void;
}

export const moveKey = (userId: string) => `move.${userId}`;
const MOVE_PREFIX = "move.";

/**
 * This mover's hold on a journal: every write is compare-and-set on the revision it last wrote,
 * and a heartbeat keeps it fresh during long steps. A refused write means another node took the
 * move over; from then on this mover touches nothing.
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
			if (this.lost) throw new Error("another node took the move over");
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

	async end(): Promise<void> {
		this.stop();
		await this.chain;
		if (!this.lost) await this.store.delete(moveKey(this.record.userId), this.revision);
	}

	stop(): void {
		clearInterval(this.timer);
	}
}

/**
 * Rehoming: mark moving → every participant service copies the user's rows from the old home to
 * the new → verify counts → compare-and-set the directory (epoch + 1, new region) → delete in the
 * old home. Participants are found by `metadata.moveParticipant`; the mover never sees a table.
 */
export class Mover {
	private readonly opts: Required<Omit<MoverOptions, "onOutcome">> & Pick<MoverOptions, "onOutcome">;
	private sweeper: NodeJS.Timeout | undefined;
	private unlisten: (() => void) | undefined;
	/** Each move journal's last heartbeat, as the change feed and the last listing told this node. */
	private readonly heartbeats = new Map<string, number>();

	constructor(opts: MoverOptions) {
		this.opts = { settleMs: 500, staleMs: 5000, ...opts };
	}

	private get store() {
		return this.opts.directory.store;
	}

	/** Moves `userId` to region `to`; resolves once the move is complete (or rejects after rolling back). */
	async move(userId: string, to: string): Promise<MoveRecord> {
		return (await this.start(userId, to)).done;
	}

	/**
	 * Begins a move: a refusal (unknown region or user, residency, a move in progress) rejects
	 * here; once the user is marked moving, `done` settles as `move` does.
	 */
	async start(userId: string, to: string): Promise<{ record: MoveRecord; done: Promise<MoveRecord> }> {
		const { regions } = this.opts;
		const target = regions.find(r => r.id === to);
		if (!target) throw new DirectoryError("INVALID_KEY", `unknown region "${to}"`);
		const entry = await this.opts.directory.entry(userId);
		if (!entry) throw new UserNotFoundError(userId);
		const from = regions.find(r => r.id === entry.value.region)!;
		if (entry.value.state === "moving") throw new MoveInProgressError(userId);
		if (from.id === to) {
			const record = this.journal(userId, from.id, to, entry.value.epoch, "flipped", []);
			return { record, done: Promise.resolve(record) };
		}
		// A pinned user stays within its jurisdiction: regions that pin at least one of the same countries.
		if (entry.value.pinned && !target.residency.some(c => from.residency.includes(c))) throw new ResidencyViolationError(userId, from.id, to);

		const participants = await this.participants(from.id, to);
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

	/** Runs a journalled move from wherever it stands to its end. */
	private async drive(current: DirectoryEntry<MoveRecord>): Promise<MoveRecord> {
		const lease = new JournalLease(this.store, current, Math.max(50, Math.floor(this.opts.staleMs / 3)));
		let flipped = current.value.step === "flipped";
		try {
			if (lease.record.step === "moving") {
				await sleep(this.opts.settleMs);
				lease.check();
				await this.drain(lease.record);
				lease.check();
				await this.copy(lease);
				await lease.write({ step: "copied" });
			}
			if (lease.record.step === "copied") {
				lease.check();
				await this.flip(lease.record);
				flipped = true;
				await lease.write({ step: "flipped" });
			}
		} catch (err) {
			const failedAt = lease.record.step;
			// Lost the journal: its new owner finishes or undoes the move. Flipped: only finishing is left, and recovery does it.
			if (!lease.lost && !flipped) {
				await this.rollBack(lease);
				this.opts.onOutcome?.("rolled-back", lease.record, (err as Error).message);
				throw new MoveFailedError(lease.record.userId, failedAt, (err as Error).message);
			}
			lease.stop();
			throw new MoveFailedError(lease.record.userId, failedAt, `${(err as Error).message}; left to the recovery sweep`);
		}
		const { userId, from, participants } = lease.record;
		for (const name of participants) await this.callIn(from, `${name}.move.delete`, { userId });
		await lease.end();
		this.opts.onOutcome?.(current.value.step === "moving" ? "moved" : "finished", lease.record);
		return lease.record;
	}

	/** Waits on every node of the old home until the user's admitted writes have finished. */
	private async drain(record: MoveRecord): Promise<void> {
		const { from, userId, participants } = record;
		const registry = from === this.opts.region.id ? this.opts.broker.registry : (await this.opts.links.broker(from)).registry;
		const calls: Promise<unknown>[] = [];
		for (const name of participants)
			for (const ep of registry.getActionEndpoints(`${name}.move.drain`)?.endpoints ?? []) {
				const opts = { nodeID: ep.id };
				calls.push(from === this.opts.region.id ? this.opts.broker.call(`${name}.move.drain`, { userId }, opts) : this.opts.links.call(from, `${name}.move.drain`, { userId }, opts));
			}
		await Promise.all(calls);
	}

	/** Copies every participant's rows, and checks both homes hold the same count afterwards. */
	private async copy(lease: JournalLease): Promise<void> {
		const { userId, from, to, participants } = lease.record;
		for (const name of participants) {
			lease.check();
			const rows = await this.callIn<unknown[]>(from, `${name}.move.export`, { userId });
			await this.callIn(to, `${name}.move.import`, { userId, rows });
			const [there, here] = await Promise.all([
				this.callIn<number>(to, `${name}.move.count`, { userId }),
				this.callIn<number>(from, `${name}.move.count`, { userId })
			]);
			if (there !== rows.length || here !== rows.length)
				throw new Error(`${name}: ${rows.length} rows exported, ${here} now in ${from}, ${there} imported into ${to}`);
		}
	}

	private async flip(record: MoveRecord): Promise<void> {
		const entry = await this.opts.directory.entry(record.userId);
		// A mover that died between the flip and its journal write left "copied": the flip is done.
		if (entry?.value.region === record.to && entry.value.epoch === record.epoch + 1) return;
		if (!entry || entry.value.region !== record.from || entry.value.epoch !== record.epoch)
			throw new Error("the directory entry changed during the move");
		await this.store.update(userKey(record.userId), { ...entry.value, region: record.to, epoch: record.epoch + 1, state: "active" } satisfies HomeEntry, entry.revision);
	}

	/** Undoes a move that has not flipped: imported rows removed, the user active in its old home. */
	private async rollBack(lease: JournalLease): Promise<void> {
		// Confirm the journal is still ours before touching anything: only its owner flips or undoes.
		await lease.write({});
		const { userId, to, from, participants } = lease.record;
		for (const name of participants) await this.callIn(to, `${name}.move.delete`, { userId });
		const entry = await this.opts.directory.entry(userId);
		if (entry && entry.value.state === "moving" && entry.value.region === from)
			await this.store.update(userKey(userId), { ...entry.value, state: "active" } satisfies HomeEntry, entry.revision);
		await lease.end();
	}

	/**
	 * Services holding per-user data in `from`, as that region's registry lists them; each must
	 * also run in `to`. Fails rather than move with nothing copied while `from`'s nodes are unknown.
	 */
	private async participants(from: string, to: string): Promise<string[]> {
		const listed = async (region: string) => {
			const registry = region === this.opts.region.id ? this.opts.broker.registry : (await this.opts.links.broker(region)).registry;
			const nodes = registry.getNodeList({ onlyAvailable: true, withServices: false }).filter(n => n.metadata?.region === region);
			if (nodes.length === 0) throw new RegionUnavailableError(region, 5, "none of its nodes is known yet");
			const names = new Set<string>();
			for (const s of registry.getServiceList({ onlyAvailable: true, skipInternal: true }) as { name: string; metadata?: { moveParticipant?: boolean } }[])
				if (s.metadata?.moveParticipant) names.add(s.name);
			return names;
		};
		const [source, target] = await Promise.all([listed(from), listed(to)]);
		const missing = [...source].filter(n => !target.has(n));
		if (missing.length) throw new RegionUnavailableError(to, 5, `${missing.join(", ")} not running there`);
		return [...source].sort();
	}

	private callIn<T>(region: string, action: string, params: unknown): Promise<T> {
		if (region === this.opts.region.id) return this.opts.broker.call<T, unknown>(action, params);
		return this.opts.links.call<T>(region, action, params);
	}

	private journal(userId: string, from: string, to: string, epoch: number, step: MoveRecord["step"], participants: string[]): MoveRecord {
		const now = Date.now();
		return { moveId: randomUUID(), userId, from, to, step, epoch, participants, owner: this.opts.broker.nodeID, heartbeat: now, startedAt: now };
	}

	/** The journal of the user's move in progress, if any. */
	async status(userId: string): Promise<MoveRecord | undefined> {
		return (await this.store.get<MoveRecord>(moveKey(userId)))?.value;
	}

	/** Takes over and ends every move whose owner went quiet (crashed): finish if flipped, else roll back. */
	async recover(): Promise<number> {
		let recovered = 0;
		for (let after = 0; ; ) {
			const page = await this.store.list<MoveRecord>(MOVE_PREFIX, { afterRevision: after, limit: 100 });
			for (const entry of page.entries) {
				this.heartbeats.set(entry.key, entry.value.heartbeat);
				if (Date.now() - entry.value.heartbeat < this.opts.staleMs) continue;
				let claimed: DirectoryEntry<MoveRecord>;
				try {
					const value = { ...entry.value, owner: this.opts.broker.nodeID, heartbeat: Date.now() };
					claimed = { ...entry, value, revision: await this.store.update(entry.key, value, entry.revision) };
				} catch {
					continue; // another node claimed it first
				}
				// A copy cut short may be partial: undo it. One that completed is finished.
				if (claimed.value.step === "moving") {
					const lease = new JournalLease(this.store, claimed, Math.max(50, Math.floor(this.opts.staleMs / 3)));
					try {
						await this.rollBack(lease);
						this.opts.onOutcome?.("rolled-back", claimed.value, "its mover stopped during the copy");
					} catch {
						lease.stop();
					}
				} else await this.drive(claimed).catch(() => undefined);
				recovered++;
			}
			if (page.next === null) return recovered;
			after = page.next;
		}
	}

	/**
	 * Looks for abandoned moves, so a crashed mover never leaves a user moving. Listing the journal
	 * costs a JetStream consumer, so it is not done every tick: the change feed tells this node each
	 * journal's heartbeat, and a tick lists (and claims) only when one has gone quiet, or when the
	 * feed is not running, or every `fullScanMs` anyway.
	 */
	startRecovery(intervalMs = 2000, fullScanMs = 30_000): void {
		this.unlisten = this.opts.directory.listen(MOVE_PREFIX, change => {
			const record = change.value as MoveRecord | undefined;
			if (record) this.heartbeats.set(change.key, record.heartbeat);
			else this.heartbeats.delete(change.key);
		});
		let lastScan = 0;
		const due = () => {
			const now = Date.now();
			if (!this.opts.directory.watching || now - lastScan >= fullScanMs) return true;
			for (const heartbeat of this.heartbeats.values()) if (now - heartbeat >= this.opts.staleMs) return true;
			return false;
		};
		const tick = () => {
			const scan = due() ? ((lastScan = Date.now()), this.recover()) : Promise.resolve(0);
			void scan
				.catch(err => this.opts.broker.logger.warn(`move recovery failed: ${(err as Error).message}`))
				.finally(() => {
					if (this.sweeper) this.sweeper = setTimeout(tick, intervalMs);
				});
		};
		this.sweeper = setTimeout(tick, 0);
	}

	stopRecovery(): void {
		clearTimeout(this.sweeper);
		this.sweeper = undefined;
		this.unlisten?.();
		this.unlisten = undefined;
	}
}

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));
