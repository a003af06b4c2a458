/**
 * Where channel messages are kept: JetStream (NATS mode) or SQLite (embedded), both held to one
 * contract suite (test/unit/mixins/channels/contract.ts). A channel is an append-only log; each
 * consumer group reads all of it once, at least once per message, acknowledging what it handled.
 * Messages with the same key reach a group one at a time, in the order they were stored.
 */

export interface ChannelMessage {
	/** Unique per channel: storing an id again stores nothing (how a forwarder's retry stays single). */
	id: string;
	channel: string;
	key?: string;
	/** Only this group gets it (a replayed dead letter); every group when absent. */
	group?: string;
	/** The payload as JSON text. */
	payload: string;
	headers: Record<string, string>;
}

export interface Delivery {
	readonly message: ChannelMessage;
	/** 1 on the first delivery to this group, counting crashed and failed ones. */
	readonly attempt: number;
	/** Handled: never delivered to this group again. */
	ack(): Promise<void>;
	/** Failed: delivered again after `delayMs`; meanwhile its key stays blocked. */
	retryIn(delayMs: number): Promise<void>;
	/** Still working: the lease (ack wait) starts again. */
	keepAlive(): Promise<void>;
	/** Given up: moved to the channel's dead letters, then done for this group. */
	deadLetter(reason: { error: string; errorType?: string; attempts: number }): Promise<void>;
}

export interface ConsumeOptions {
	/** Deliveries this consumer handles at once. */
	maxInFlight: number;
	/** A delivery neither acknowledged nor kept alive for this long is given to a consumer again. */
	ackWaitMs: number;
	/** Told when taking messages fails (the consumer keeps trying) or a stored message cannot be read (it is set aside). */
	onError?: (err: Error) => void;
}

export interface Consumption {
	/** Stops taking messages and waits for the deliveries being handled. */
	stop(): Promise<void>;
}

export interface DeadLetter {
	id: string;
	channel: string;
	group: string;
	key?: string;
	payload: string;
	headers: Record<string, string>;
	error: string;
	errorType?: string;
	attempts: number;
	/** When it was dead-lettered (ms since the epoch). */
	at: number;
}

export interface ChannelInfo {
	channel: string;
	groups: string[];
}

export interface ChannelStore {
	readonly kind: "jetstream" | "sqlite";
	/** Makes the channel (and the group, when given) exist; idempotent. A new group reads every message still kept. */
	declare(channel: string, group?: string, opts?: { ackWaitMs?: number }): Promise<void>;
	/** Resolves once the message is durably stored. `UNKNOWN_CHANNEL` unless declared. */
	publish(message: ChannelMessage): Promise<{ duplicate: boolean }>;
	/** Hands each delivery to `handle`; a delivery `handle` leaves unsettled comes back after the ack wait. */
	consume(channel: string, group: string, opts: ConsumeOptions, handle: (delivery: Delivery) => Promise<void>): Promise<Consumption>;
	/** Messages the group has not acknowledged yet (waiting, in flight or backing off). */
	pending(channel: string, group: string): Promise<number>;
	/** The latest dead letters first, at most `limit`. */
	deadLetters(channel: string, limit: number): Promise<DeadLetter[]>;
	/** Stores the dead letter again, for its group only, under a new id; then removes it. `DEAD_LETTER_NOT_FOUND` if absent. */
	replay(channel: string, id: string): Promise<ChannelMessage>;
	/** Every declared channel with its groups. */
	channels(): Promise<ChannelInfo[]>;
	/** The declared channels whose name starts with `prefix`, found without declaring or reading anything. */
	declaredWith(prefix: string): Promise<string[]>;
	close(): Promise<void>;
}

/** A dead letter stored again for the group that gave up on it, under a new id that names the original. */
export function replayOf(dead: DeadLetter, id: string): ChannelMessage {
	return {
		id,
		channel: dead.channel,
		group: dead.group,
		payload: dead.payload,
		headers: { ...dead.headers, "x-replay-of": dead.id },
		...(dead.key === undefined ? {} : { key: dead.key })
	};
}

/** How long messages are kept, handled or not; a group that is down longer than this loses the oldest. */
export const RETENTION_MS = 7 * 24 * 3600_000;
/** Dead letters wait this long for someone to look at them. */
export const DEAD_LETTER_RETENTION_MS = 30 * 24 * 3600_000;
export const MAX_DEAD_LETTER_PAGE = 1000;

/** At most `max` calls of `run` at once; `take` waits for a free slot. */
export class Slots {
	private free: number;
	private readonly waiting: (() => void)[] = [];
	private readonly drained: (() => void)[] = [];
	private readonly max: number;

	constructor(max: number) {
		this.max = max;
		this.free = max;
	}

	get inUse(): number {
		return this.max - this.free;
	}

	async take(): Promise<void> {
		if (this.free > 0) {
			this.free--;
			return;
		}
		await new Promise<void>(resolve => this.waiting.push(resolve));
	}

	release(): void {
		const next = this.waiting.shift();
		if (next) {
			next();
			return;
		}
		this.free++;
		if (this.free === this.max) for (const done of this.drained.splice(0)) done();
	}

	/** Resolves once no slot is taken. */
	idle(): Promise<void> {
		if (this.free === this.max) return Promise.resolve();
		return new Promise(resolve => this.drained.push(resolve));
	}
}
