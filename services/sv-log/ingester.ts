import type { Logger } from "moleculer";
import { ChainConflictError } from "./errors.ts";
import type { LogRecord } from "./record.ts";
import { GENESIS, hashOf } from "./record.ts";
import type { Append, ChainHead, LogStore } from "./store.ts";

/** A record as it arrives, before it has a place in the chain. */
export type Entry = Omit<LogRecord, "region" | "seq" | "loggedAt" | "prevHash" | "hash">;

export interface IngestSettings {
	/** Records one append writes at most. */
	batchSize: number;
	/** Longest a record waits for its batch to fill. */
	flushMs: number;
	/** Appends of one batch lost to another node's before it is failed back (its messages come again). */
	maxConflicts: number;
}

/** A batch linked into the chain, and its append made ready. */
interface Linked {
	records: LogRecord[];
	write: Append;
}

interface Waiting {
	entry: Entry;
	done: () => void;
	failed: (err: unknown) => void;
}

/**
 * Batches a region's incoming records into its chain: records wait until a batch is full or
 * `flushMs` has passed; each batch is linked (every record to the one before it) and its append
 * made ready as soon as it is taken, while the batch before it may still be being appended, and
 * appended in turn, one append at a time. A batch whose links were made on a tail that is not
 * what was stored before it (that batch failed, or another node appended to the same chain: a
 * unique-key conflict) is linked again from what is stored. `add` resolves once its record is
 * stored, so a channel message is acknowledged only then.
 */
export class Ingester {
	private readonly store: LogStore;
	private readonly region: string;
	private readonly settings: IngestSettings;
	private readonly logger: Logger;
	private buffer: Waiting[] = [];
	/** Where the next batch links: the last linked batch's tail (null: read it once the appends before it are done). */
	private linkedTail: ChainHead | undefined | null = null;
	/** The chain's tail as this node last stored it (null: unknown, read it from the store). */
	private storedTail: ChainHead | undefined | null = null;
	/** The last batch's append, true once it stored. */
	private appending: Promise<boolean> = Promise.resolve(true);
	private timer: NodeJS.Timeout | undefined;
	private linking: Promise<void> | undefined;

	constructor(store: LogStore, region: string, settings: IngestSettings, logger: Logger) {
		this.store = store;
		this.region = region;
		this.settings = settings;
		this.logger = logger;
	}

	add(entry: Entry): Promise<void> {
		return new Promise((done, failed) => {
			this.buffer.push({ entry, done, failed });
			if (this.buffer.length >= this.settings.batchSize) this.kick();
			else this.timer ??= setTimeout(() => this.kick(), this.settings.flushMs);
		});
	}

	/** Stores everything buffered now. */
	async drain(): Promise<void> {
		while (this.buffer.length > 0 || this.linking) {
			this.kick();
			await this.linking;
		}
		await this.appending;
	}

	private kick(): void {
		clearTimeout(this.timer);
		this.timer = undefined;
		if (this.linking || this.buffer.length === 0) return;
		this.linking = this.take().finally(() => {
			this.linking = undefined;
			if (this.buffer.length >= this.settings.batchSize) this.kick();
			else if (this.buffer.length > 0) this.timer ??= setTimeout(() => this.kick(), this.settings.flushMs);
		});
	}

	/** Takes a batch and links it; its append follows the one before it. */
	private async take(): Promise<void> {
		const batch = this.buffer.splice(0, this.settings.batchSize);
		const previous = this.appending;
		// The same message delivered twice at once is one record.
		const entries = [...new Map(batch.map(w => [w.entry.id, w.entry])).values()];
		let linked: Linked;
		try {
			if (this.linkedTail === null) {
				await previous;
				this.linkedTail = this.storedTail ?? (await this.store.head(this.region));
			}
			linked = this.link(entries, this.linkedTail);
			this.linkedTail = tailOf(linked.records) ?? this.linkedTail;
		} catch (err) {
			this.linkedTail = null;
			this.fail(batch, err);
			return;
		}
		this.appending = previous
			.then(() => this.append(entries, linked))
			.then(
				() => {
					// Acknowledged once the next batch's append is on its way to the database (a macrotask
					// later): the records their senders send next are then checked and linked while that
					// append runs, instead of holding it back until they are.
					setImmediate(() => {
						for (const w of batch) w.done();
					});
					return true;
				},
				err => {
					this.linkedTail = null;
					this.storedTail = null;
					this.fail(batch, err);
					return false;
				}
			);
	}

	private fail(batch: Waiting[], err: unknown): void {
		this.logger.warn(`audit batch of ${batch.length} not stored: ${(err as Error).message}`);
		for (const w of batch) w.failed(err);
	}

	private async append(entries: Entry[], first: Linked): Promise<void> {
		let pending = entries;
		let linked = first;
		for (let conflicts = 0; ; conflicts++) {
			if (this.storedTail === null) this.storedTail = await this.store.head(this.region);
			const basis = this.storedTail;
			const head = linked.records[0];
			if (head && (head.seq !== (basis?.seq ?? 0) + 1 || head.prevHash !== (basis?.hash ?? GENESIS))) {
				// Linked on a tail that was not stored: linked again, and the batches after it will be too.
				linked = this.link(pending, basis);
				this.linkedTail = null;
			}
			if (linked.records.length === 0) return;
			try {
				await linked.write();
				this.storedTail = tailOf(linked.records)!;
				return;
			} catch (err) {
				if (!(err instanceof ChainConflictError) || conflicts >= this.settings.maxConflicts) throw err;
				// Another node appended, or some of these were stored before (a redelivery): start from what is there now.
				const stored = await this.store.existing(
					this.region,
					pending.map(e => e.id)
				);
				pending = pending.filter(e => !stored.has(e.id));
				if (pending.length === 0) return;
				this.storedTail = await this.store.head(this.region);
				linked = this.link(pending, this.storedTail);
				this.linkedTail = null;
			}
		}
	}

	private link(entries: Entry[], head: ChainHead | undefined): Linked {
		let seq = head?.seq ?? 0;
		let prevHash = head?.hash ?? GENESIS;
		const loggedAt = Date.now();
		const records = entries.map(e => {
			const record: LogRecord = {
				region: this.region,
				seq: ++seq,
				id: e.id,
				at: e.at,
				actor: e.actor,
				action: e.action,
				target: e.target,
				outcome: e.outcome,
				requestId: e.requestId,
				traceId: e.traceId,
				ipHash: e.ipHash,
				detail: e.detail,
				loggedAt,
				prevHash,
				hash: ""
			};
			record.hash = hashOf(record);
			prevHash = record.hash;
			return record;
		});
		return { records, write: this.store.prepareAppend(this.region, records) };
	}
}

function tailOf(records: LogRecord[]): ChainHead | undefined {
	const last = records[records.length - 1];
	return last ? { seq: last.seq, hash: last.hash } : undefined;
}
