import { randomUUID } from "node:crypto";
import type { ConsumerMessages, JetStreamClient, JetStreamManager, JsMsg, NatsConnection, StoredMsg } from "nats";
import { AckPolicy, connect, DeliverPolicy, DiscardPolicy, ErrorCode, NatsError, nanos, RetentionPolicy, StorageType } from "nats";
import type { NatsCredentials } from "../../regions/runtime/bus-credentials.ts";
import { ChannelError } from "./errors.ts";
import { assertStoredChannelName, MAX_PAYLOAD_BYTES } from "./names.ts";
import { notFound, unknownChannel } from "./sqlite-store.ts";
import type { ChannelInfo, ChannelMessage, ChannelStore, ConsumeOptions, Consumption, DeadLetter, Delivery } from "./store.ts";
import { DEAD_LETTER_RETENTION_MS, MAX_DEAD_LETTER_PAGE, RETENTION_MS, replayOf, Slots } from "./store.ts";

export interface JetStreamChannelsOptions {
	servers: string;
	/** The region's Moleculer namespace: every stream and subject of this store carries it. */
	namespace: string;
	/** The region's JetStream domain, when the region has its own (leaf) JetStream. */
	domain?: string;
	credentials?: NatsCredentials;
	/** Bound on each JetStream request (default 5000). */
	timeoutMs?: number;
	name?: string;
}

/**
 * Keyed messages are spread over this many subjects by a hash of their key, each read by a consumer
 * with one message in flight: the server itself keeps a key's messages in order, whichever node pulls.
 */
export const KEY_PARTITIONS = 8;
const PARTS = ["u", ...Array.from({ length: KEY_PARTITIONS }, (_, i) => `k${i}`)];
/** Unkeyed messages in flight for a whole group, across its nodes (each node also keeps to its own maxInFlight). */
const UNKEYED_MAX_ACK_PENDING = 10_000;
/** Storing the same id again within this window stores nothing (a forwarder's retry after a crash). */
const DUPLICATE_WINDOW_MS = 15 * 60_000;
/** A pull waits this long: a consumer finds a restarted server again within about this time. */
const PULL_EXPIRES_MS = 5000;
/** The JetStream answers for "no such stream", "already exists with another configuration", "no message". */
const STREAM_NOT_FOUND = 10059;
const STREAM_NAME_IN_USE = 10058;
const NO_MESSAGE_FOUND = 10037;
const ENVELOPE_SEPARATOR = "\n";

interface Envelope {
	id: string;
	key?: string;
	group?: string;
	headers: Record<string, string>;
}

interface DeadEnvelope extends Envelope {
	error: string;
	errorType?: string;
	attempts: number;
	at: number;
	deadGroup: string;
}

/**
 * Channels on JetStream: one stream per channel (`CH_<namespace>_<channel>`), one durable pull
 * consumer per group and partition, a dead-letter stream per channel (made by its first dead
 * letter) whose subjects end in the message id. The message's id, key, target group and headers travel in a one-line JSON envelope
 * before the payload, so a delivery is parsed once.
 */
export class JetStreamChannelStore implements ChannelStore {
	readonly kind = "jetstream" as const;
	private readonly nc: NatsConnection;
	private readonly js: JetStreamClient;
	private readonly jsm: JetStreamManager;
	private readonly ns: string;

	constructor(nc: NatsConnection, js: JetStreamClient, jsm: JetStreamManager, namespace: string) {
		this.nc = nc;
		this.js = js;
		this.jsm = jsm;
		this.ns = namespace;
	}

	async declare(channel: string, group?: string, opts: { ackWaitMs?: number } = {}): Promise<void> {
		assertStoredChannelName(channel);
		await this.translate(async () => {
			// The dead-letter stream is made by the first dead letter: a channel that never has one leaves none.
			await this.ensureStream(this.stream(channel), [`${this.subjectBase(channel)}.*`], RETENTION_MS);
			if (!group) return;
			for (const part of PARTS) {
				const config = {
					durable_name: durable(group, part),
					ack_policy: AckPolicy.Explicit,
					deliver_policy: DeliverPolicy.All,
					ack_wait: nanos(opts.ackWaitMs ?? 30_000),
					max_deliver: -1,
					filter_subject: `${this.subjectBase(channel)}.${part}`,
					max_ack_pending: part === "u" ? UNKEYED_MAX_ACK_PENDING : 1
				};
				// Adding an existing durable with another ack wait fails: the declaration's change then updates it.
				await this.jsm.consumers.add(this.stream(channel), config).catch(async err => {
					const existing = await this.jsm.consumers.info(this.stream(channel), config.durable_name).catch(() => undefined);
					if (!existing) throw err;
					await this.jsm.consumers.update(this.stream(channel), config.durable_name, { ack_wait: config.ack_wait });
				});
			}
		});
	}

	async publish(message: ChannelMessage): Promise<{ duplicate: boolean }> {
		assertStoredChannelName(message.channel);
		const envelope: Envelope = { id: message.id, headers: message.headers };
		if (message.key !== undefined) envelope.key = message.key;
		if (message.group !== undefined) envelope.group = message.group;
		const subject = `${this.subjectBase(message.channel)}.${partOf(message.key)}`;
		try {
			const ack = await this.js.publish(subject, JSON.stringify(envelope) + ENVELOPE_SEPARATOR + message.payload, { msgID: message.id });
			return { duplicate: ack.duplicate };
		} catch (err) {
			// No stream takes the channel's subjects: no group ever declared it.
			if (err instanceof NatsError && err.code === ErrorCode.NoResponders) throw unknownChannel(message.channel);
			throw unavailable("publish", err);
		}
	}

	async consume(channel: string, group: string, opts: ConsumeOptions, handle: (delivery: Delivery) => Promise<void>): Promise<Consumption> {
		await this.declare(channel, group, { ackWaitMs: opts.ackWaitMs });
		const slots = new Slots(opts.maxInFlight);
		const feeds: ConsumerMessages[] = [];
		for (const part of PARTS) {
			const consumer = await this.translate(() => this.js.consumers.get(this.stream(channel), durable(group, part)));
			feeds.push(await consumer.consume({ max_messages: part === "u" ? opts.maxInFlight : 1, expires: PULL_EXPIRES_MS }));
		}
		const loops = feeds.map(async feed => {
			for await (const msg of feed) {
				let delivery: Delivery | undefined;
				try {
					delivery = this.delivery(channel, group, msg);
				} catch (err) {
					// Not written by a channel store (no envelope): never deliverable, so it is not retried.
					msg.term();
					opts.onError?.(new Error(`channel ${channel}: message ${msg.seq} is not a channel message: ${(err as Error).message}`));
				}
				if (!delivery) continue;
				await slots.take();
				void handle(delivery).finally(() => slots.release());
			}
		});
		for (const loop of loops) loop.catch(err => opts.onError?.(err as Error));
		return {
			stop: async () => {
				for (const feed of feeds) feed.stop();
				await Promise.allSettled(loops);
				await slots.idle();
			}
		};
	}

	async pending(channel: string, group: string): Promise<number> {
		return this.translate(async () => {
			let total = 0;
			for (const part of PARTS) {
				const info = await this.jsm.consumers.info(this.stream(channel), durable(group, part));
				total += info.num_pending + info.num_ack_pending;
			}
			return total;
		});
	}

	async deadLetters(channel: string, limit: number): Promise<DeadLetter[]> {
		return this.translate(async () => {
			const stream = this.deadStream(channel);
			const info = await this.jsm.streams.info(stream).catch(err => {
				if (apiCode(err) === STREAM_NOT_FOUND) return undefined;
				throw err;
			});
			if (!info) return [];
			const wanted = Math.min(limit, MAX_DEAD_LETTER_PAGE);
			const found: DeadLetter[] = [];
			// Newest first; replayed ones left gaps, so a page looks at most twice its size past them.
			for (let seq = info.state.last_seq; seq >= info.state.first_seq && seq > 0 && found.length < wanted; seq--) {
				if (info.state.last_seq - seq > wanted * 2 + info.state.num_deleted) break;
				const stored = await this.jsm.streams.getMessage(stream, { seq }).catch(() => undefined);
				if (stored) found.push(deadLetterOf(channel, stored));
			}
			return found;
		});
	}

	async replay(channel: string, id: string): Promise<ChannelMessage> {
		const stream = this.deadStream(channel);
		const stored = await this.translate(() =>
			this.jsm.streams.getMessage(stream, { last_by_subj: `${this.deadBase(channel)}.${id}` }).catch(err => {
				if (apiCode(err) === NO_MESSAGE_FOUND || apiCode(err) === STREAM_NOT_FOUND) return undefined;
				throw err;
			})
		);
		if (!stored) throw notFound(channel, id);
		const dead = deadLetterOf(channel, stored);
		const message = replayOf(dead, randomUUID());
		// Stored again before it leaves the dead letters: a crash in between replays it twice, never zero times.
		await this.publish(message);
		await this.translate(() => this.jsm.streams.deleteMessage(stream, stored.seq, false));
		return message;
	}

	async channels(): Promise<ChannelInfo[]> {
		return this.translate(async () => {
			const prefix = `CH_${this.ns}_`;
			const found: ChannelInfo[] = [];
			for await (const stream of this.jsm.streams.list()) {
				if (!stream.config.name.startsWith(prefix)) continue;
				const subject = stream.config.subjects?.[0] ?? "";
				const channel = subject.slice(`ch.${this.ns}.`.length, -2);
				const groups = new Set<string>();
				for await (const consumer of this.jsm.consumers.list(stream.config.name)) {
					const name = consumer.config.durable_name ?? consumer.name;
					groups.add(name.slice(0, name.lastIndexOf("__")));
				}
				found.push({ channel, groups: [...groups].sort() });
			}
			return found.sort((a, b) => a.channel.localeCompare(b.channel));
		});
	}

	async declaredWith(prefix: string): Promise<string[]> {
		return this.translate(async () => {
			const streamPrefix = this.stream(prefix);
			const found: string[] = [];
			// A channel name holds no "_": the stream name gives the channel back.
			for await (const name of this.jsm.streams.names())
				if (name.startsWith(streamPrefix)) found.push(name.slice(`CH_${this.ns}_`.length).replaceAll("_", "."));
			return found.sort();
		});
	}

	async close(): Promise<void> {
		if (this.nc.isClosed()) return;
		await this.nc.drain().catch(() => this.nc.close());
	}

	private delivery(channel: string, group: string, msg: JsMsg): Delivery | undefined {
		const text = msg.string();
		const cut = text.indexOf(ENVELOPE_SEPARATOR);
		const envelope = JSON.parse(text.slice(0, cut)) as Envelope;
		// A replayed dead letter is for the group that gave up on it; the others pass it by.
		if (envelope.group !== undefined && envelope.group !== group) {
			msg.ack();
			return undefined;
		}
		const message: ChannelMessage = { ...envelope, channel, payload: text.slice(cut + 1) };
		return {
			message,
			attempt: msg.info.deliveryCount,
			ack: async () => msg.ack(),
			retryIn: async delayMs => msg.nak(delayMs),
			keepAlive: async () => msg.working(),
			deadLetter: async reason => {
				const dead: DeadEnvelope = { ...envelope, deadGroup: group, error: reason.error, attempts: reason.attempts, at: Date.now() };
				if (reason.errorType !== undefined) dead.errorType = reason.errorType;
				const subject = `${this.deadBase(channel)}.${envelope.id}`;
				const data = JSON.stringify(dead) + ENVELOPE_SEPARATOR + message.payload;
				try {
					await this.js.publish(subject, data).catch(async err => {
						// No stream takes it yet: this is the channel's first dead letter.
						if (!(err instanceof NatsError && err.code === ErrorCode.NoResponders)) throw err;
						await this.ensureStream(this.deadStream(channel), [`${this.deadBase(channel)}.*`], DEAD_LETTER_RETENTION_MS);
						await this.js.publish(subject, data);
					});
				} catch (err) {
					throw unavailable("dead-letter", err);
				}
				msg.term();
			}
		};
	}

	private async ensureStream(name: string, subjects: string[], maxAgeMs: number): Promise<void> {
		const config = {
			name,
			subjects,
			storage: StorageType.File,
			retention: RetentionPolicy.Limits,
			max_age: nanos(maxAgeMs),
			// No byte limit of its own (a stream's limit is reserved up front on the server, in use or not):
			// the server's store is the limit, and when it is full a publish is refused, never an unhandled message dropped.
			discard: DiscardPolicy.New,
			max_msg_size: MAX_PAYLOAD_BYTES + 16 * 1024,
			duplicate_window: nanos(DUPLICATE_WINDOW_MS),
			num_replicas: 1
		};
		await this.jsm.streams.add(config).catch(err => {
			if (apiCode(err) !== STREAM_NAME_IN_USE) throw err;
		});
	}

	private stream(channel: string): string {
		return `CH_${this.ns}_${channel.replaceAll(".", "_")}`;
	}
	private deadStream(channel: string): string {
		return `CHDLQ_${this.ns}_${channel.replaceAll(".", "_")}`;
	}
	private subjectBase(channel: string): string {
		return `ch.${this.ns}.${channel}`;
	}
	private deadBase(channel: string): string {
		return `chdlq.${this.ns}.${channel}`;
	}

	private async translate<R>(op: () => Promise<R>): Promise<R> {
		try {
			return await op();
		} catch (err) {
			if (err instanceof ChannelError) throw err;
			throw unavailable("request", err);
		}
	}
}

export async function openJetStreamChannels(opts: JetStreamChannelsOptions): Promise<JetStreamChannelStore> {
	if (!/^[A-Za-z0-9-]+$/.test(opts.namespace)) throw new Error(`channels: namespace "${opts.namespace}" must be letters, digits and "-" only`);
	const timeout = opts.timeoutMs ?? 5000;
	let nc: NatsConnection;
	try {
		nc = await connect({ servers: opts.servers, ...opts.credentials, name: opts.name, timeout, maxReconnectAttempts: -1, reconnectTimeWait: 500 });
	} catch (err) {
		throw unavailable(`connect to ${opts.servers}`, err);
	}
	const js = nc.jetstream({ timeout, domain: opts.domain });
	const jsm = await nc.jetstreamManager({ timeout, domain: opts.domain, checkAPI: false });
	return new JetStreamChannelStore(nc, js, jsm, opts.namespace);
}

function durable(group: string, part: string): string {
	return `${group}__${part}`;
}

/** FNV-1a of the key: the same key lands on the same partition in every process. */
function partOf(key: string | undefined): string {
	if (key === undefined) return "u";
	let hash = 0x811c9dc5;
	for (let i = 0; i < key.length; i++) hash = Math.imul(hash ^ key.charCodeAt(i), 0x01000193);
	return `k${(hash >>> 0) % KEY_PARTITIONS}`;
}

function deadLetterOf(channel: string, stored: StoredMsg): DeadLetter {
	const text = stored.string();
	const cut = text.indexOf(ENVELOPE_SEPARATOR);
	const dead = JSON.parse(text.slice(0, cut)) as DeadEnvelope;
	return {
		id: dead.id,
		channel,
		group: dead.deadGroup,
		payload: text.slice(cut + 1),
		headers: dead.headers,
		error: dead.error,
		attempts: dead.attempts,
		at: dead.at,
		...(dead.key === undefined ? {} : { key: dead.key }),
		...(dead.errorType === undefined ? {} : { errorType: dead.errorType })
	};
}

function apiCode(err: unknown): number | undefined {
	return err instanceof NatsError ? err.api_error?.err_code : undefined;
}

function unavailable(what: string, err: unknown): ChannelError {
	return new ChannelError("CHANNEL_UNAVAILABLE", `channel store ${what} failed: ${(err as Error).message ?? String(err)}`);
}
