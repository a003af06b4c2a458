import { randomUUID } from "node:crypto";
import type { ServiceBroker } from "moleculer";
import { userKey } from "./directory/entries.ts";
import type { HomeEntry } from "./directory/entries.ts";
import type { HomeDirectory } from "./directory/home-directory.ts";
import { DirectoryError } from "./directory/store.ts";
import type { DirectoryEntry } from "./directory/store.ts";
import { MoveFailedError, MoveInProgressError, ResidencyViolationError, UserNotFoundError } from "./errors.ts";
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
	onOutcome?: (outcome: MoveOutcome, record: MoveRecord) => void;
}

export const moveKey = (userId: string) => `move.${userId}`;
const MOVE_PREFIX = "move.";

interface Participant {
	name: string;
}

/**
 * Rehoming: mark moving → every participant service copies the user's rows from the old home to
 * the new → verify counts → compare-and-set the directory (epoch + 1, new region) → delete in the
 * old home. Participants are found by `metadata.moveParticipant`; the mover never sees a table.
 */
export class Mover {
	private readonly opts: Required<Omit<MoverOptions, "onOutcome">> & Pick<MoverOptions, "onOutcome">;
	private sweeper: NodeJS.Timeout | undefined;

	constructor(opts: MoverOptions) {
		this.opts = { settleMs: 500, staleMs: 5000, ...opts };
	}

	private get store() {
		return this.opts.directory.store;
	}

	/** Moves `userId` to region `to`; resolves once the move is complete (or rejects after rolling back). */
	async move(userId: string, to: string): Promise<MoveRecord> {
		const { regions } = this.opts;
		const target = regions.find(r => r.id === to);
		if (!target) throw new DirectoryError("INVALID_KEY", `unknown region "${to}"`);
		const entry = await this.opts.directory.entry(userId);
		if (!entry) throw new UserNotFoundError(userId);
		const from = regions.find(r => r.id === entry.value.region)!;
		if (entry.value.state === "moving") throw new MoveInProgressError(userId);
		if (from.id === to) return this.journal(userId, from.id, to, entry.value.epoch, "flipped");
		// A pinned user stays within its jurisdiction: regions that pin at least one of the same countries.
		if (entry.value.pinned && !target.residency.some(c => from.residency.includes(c))) throw new ResidencyViolationError(userId, from.id, to);

		const record = this.journal(userId, from.id, to, entry.value.epoch, "moving");
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
		return this.drive({ value: record, revision: recordRevision, key: moveKey(userId) });
	}

	/** Runs a journalled move from wherever it stands to its end. */
	private async drive(current: DirectoryEntry<MoveRecord>): Promise<MoveRecord> {
		let record = current.value;
		let revision = current.revision;
		const step = async (next: MoveRecord["step"]) => {
			record = { ...record, step: next, heartbeat: Date.now(), owner: this.opts.broker.nodeID };
			// Compare-and-set: a mover that lost its journal to another node stops here.
			revision = await this.store.update(moveKey(record.userId), record, revision);
		};
		try {
			if (record.step === "moving") {
				await sleep(this.opts.settleMs);
				await this.copy(record);
				await step("copied");
			}
			if (record.step === "copied") {
				await this.flip(record);
				await step("flipped");
			}
		} catch (err) {
			const failedAt = record.step;
			await this.rollBack(record, revision);
			this.opts.onOutcome?.("rolled-back", record);
			throw new MoveFailedError(record.userId, failedAt, (err as Error).message);
		}
		for (const p of await this.participants(record.from)) await this.callIn(record.from, `${p.name}.move.delete`, { userId: record.userId });
		await this.store.delete(moveKey(record.userId), revision);
		this.opts.onOutcome?.(current.value.step === "moving" ? "moved" : "finished", record);
		return record;
	}

	/** Copies every participant's rows, and checks both homes hold the same count afterwards. */
	private async copy(record: MoveRecord): Promise<void> {
		const { userId, from, to } = record;
		for (const p of await this.participants(from)) {
			const rows = await this.callIn<unknown[]>(from, `${p.name}.move.export`, { userId });
			await this.callIn(to, `${p.name}.move.import`, { userId, rows });
			const [there, here] = await Promise.all([
				this.callIn<number>(to, `${p.name}.move.count`, { userId }),
				this.callIn<number>(from, `${p.name}.move.count`, { userId })
			]);
			if (there !== rows.length || here !== rows.length)
				throw new Error(`${p.name}: ${rows.length} rows exported, ${here} now in ${from}, ${there} imported into ${to}`);
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
	private async rollBack(record: MoveRecord, revision: number): Promise<void> {
		const entry = await this.opts.directory.entry(record.userId);
		if (entry?.value.region === record.to) return; // it flipped after all; the caller finishes it
		for (const p of await this.participants(record.to)) await this.callIn(record.to, `${p.name}.move.delete`, { userId: record.userId });
		if (entry && entry.value.state === "moving") await this.store.update(userKey(record.userId), { ...entry.value, state: "active" } satisfies HomeEntry, entry.revision);
		await this.store.delete(moveKey(record.userId), revision).catch(() => undefined);
	}

	/** Services that hold per-user data in `region`, as that region's registry lists them. */
	private async participants(region: string): Promise<Participant[]> {
		const registry = region === this.opts.region.id ? this.opts.broker.registry : (await this.opts.links.broker(region)).registry;
		const names = new Set<string>();
		for (const s of registry.getServiceList({ onlyAvailable: true, skipInternal: true }) as { name: string; metadata?: { moveParticipant?: boolean } }[])
			if (s.metadata?.moveParticipant) names.add(s.name);
		return [...names].sort().map(name => ({ name }));
	}

	private callIn<T>(region: string, action: string, params: unknown): Promise<T> {
		if (region === this.opts.region.id) return this.opts.broker.call<T, unknown>(action, params);
		return this.opts.links.call<T>(region, action, params);
	}

	private journal(userId: string, from: string, to: string, epoch: number, step: MoveRecord["step"]): MoveRecord {
		const now = Date.now();
		return { moveId: randomUUID(), userId, from, to, step, epoch, owner: this.opts.broker.nodeID, heartbeat: now, startedAt: now };
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
					await this.rollBack(claimed.value, claimed.revision);
					this.opts.onOutcome?.("rolled-back", claimed.value);
				} else await this.drive(claimed).catch(() => undefined);
				recovered++;
			}
			if (page.next === null) return recovered;
			after = page.next;
		}
	}

	/** Looks for abandoned moves now and then, so a crashed mover never leaves a user moving. */
	startRecovery(intervalMs = 2000): void {
		const tick = () => {
			void this.recover()
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
	}
}

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));
