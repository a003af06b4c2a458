import type { Consumer, ConsumerMessages, JetStreamClient, JetStreamManager, JsMsg, KV, MsgHdrs, NatsConnection, OrderedConsumerOptions } from "nats";
import { AckPolicy, connect, DeliverPolicy, ErrorCode, JSONCodec, NatsError, nanos } from "nats";
import type { NatsCredentials } from "../runtime/bus-credentials.ts";
import type { MirrorWatchdogEvent } from "./mirror-watchdog.ts";
import { MirrorWatchdog } from "./mirror-watchdog.ts";
import type { DirectoryChange, DirectoryEntry, DirectoryErrorCode, DirectoryPage, DirectoryStore, DirectoryWatch, ReadOptions } from "./store.ts";
import { assertAfter, assertKey, assertListBounds, assertPrefix, assertRevision, DirectoryError, deliver } from "./store.ts";

export interface NatsKvDirectoryOptions {
	servers: string;
	bucket: string;
	/** The JetStream domain of this region's edge server; with `originDomain`, reads and watches come from this region's mirror there. */
	domain?: string;
	/** The JetStream domain holding the origin bucket (the hub); absent, the origin is in the connected server's own JetStream. */
	originDomain?: string;
	/** Replicas of the origin bucket when this node is the one to create it (default 1). */
	originReplicas?: number;
	/** Bound on every operation, end to end (default 2000). */
	timeoutMs?: number;
	/** Connection name, as the server's monitoring shows it. */
	name?: string;
	/** A mirror behind its origin and not moving for this long is made anew (default 15–25 s, jittered per node). */
	mirrorStallMs?: number;
	/** Hears what the mirror's watchdog sees (for the node's log). */
	onMirrorEvent?: (event: MirrorWatchdogEvent) => void;
	/** The node's bus login and TLS (regions/runtime/bus-credentials.ts). */
	credentials?: NatsCredentials;
}

const DEFAULT_TIMEOUT_MS = 2000;
/** The server's answer to a publish whose expected last sequence for the key does not hold. */
const WRONG_LAST_SEQUENCE = 10071;
/** JetStream answers that mean "cannot serve this now": temporarily unavailable, stream offline, no peers in the placement cluster. */
const UNAVAILABLE_API_ERRORS = new Set([10008, 10118, 10194, 10005]);
const UNAVAILABLE_CODES = new Set<string>([
	ErrorCode.NoResponders,
	ErrorCode.Timeout,
	ErrorCode.ConnectionClosed,
	ErrorCode.ConnectionDraining,
	ErrorCode.ConnectionRefused,
	ErrorCode.ConnectionTimeout,
	ErrorCode.Disconnect
]);
/** The client's minimum; a page's fetch only waits this long if messages vanish under it (an outside purge). */
const FETCH_EXPIRES_MS = 1000;
/** The server removes a page's consumer on its own after this, should the explicit delete not arrive. */
const PAGE_CONSUMER_IDLE_MS = 30_000;
/** A watch's pull interval: with the heartbeats at half of it, a lost consumer is recreated within seconds. */
const WATCH_EXPIRES_MS = 5000;
/**
 * A replica the origin's leader has not heard from for this long does not count towards a quorum. The leader of an
 * idle raft group sends a heartbeat every second and each live replica answers it (nats-server 2.9 raft.go; measured: under 1 s).
 */
const REPLICA_SEEN_MS = 2000;

const json = JSONCodec<unknown>();

/** One JetStream: the connected server's own, or another domain's reached through it. */
interface JetStreamApi {
	js: JetStreamClient;
	jsm: JetStreamManager;
}

interface StoreParts {
	nc: NatsConnection;
	/** The JetStream reads and watches use: this region's. */
	local: JetStreamApi;
	/** The JetStream of the origin bucket: the hub's, or the local one. */
	remote: JetStreamApi;
	origin: KV;
	reader: KV;
	bucket: string;
	readStream: string;
	/** Makes sure the origin bucket exists; writes wait for it, bounded, and try again after a failure. */
	ensureOrigin: () => Promise<unknown>;
	/** The first such check, started when the store opened. */
	originReady: Promise<unknown>;
	timeoutMs: number;
	mirrorStallMs?: number;
	onMirrorEvent?: (event: MirrorWatchdogEvent) => void;
}

/**
 * The directory on a JetStream KV bucket. Writes go to the origin bucket (in the hub's JetStream
 * domain, replicated across the regions' hub servers); reads and change feeds come from this
 * region's mirror of it in the region's own domain when there is one, so they keep working, and a
 * node can start, while the hub is unreachable or has no quorum. Mirrors keep the origin's sequence numbers,
 * which are the revisions. With history 1 the stream holds exactly one message per key, its
 * latest (a delete marker for a deleted key), which is what lets `list` page by sequence; it
 * also means a replaying watch gets each key's latest change after the revision, not every one.
 * A mirror trails the origin by the replication delay, so a read right after a write made in
 * another region (or in this one) may not see it yet.
 */
export class NatsKvDirectoryStore implements DirectoryStore {
	private readonly nc: NatsConnection;
	private readonly local: JetStreamApi;
	private readonly remote: JetStreamApi;
	private readonly origin: KV;
	/** The origin's keys, read from the stream reads come from. */
	private readonly reader: KV;
	/** The stream reads come from: the origin's, or this region's mirror. */
	private readonly readStream: string;
	/** The origin bucket's stream, for authoritative reads. */
	private readonly originStream: string;
	/** Subjects of the origin's keys, kept as they are in a mirror. */
	private readonly subjectPrefix: string;
	private readonly timeoutMs: number;
	private ensuring: Promise<unknown>;
	private readonly ensureOrigin: () => Promise<unknown>;
	private readonly watches = new Set<DirectoryWatch & { reopen(): Promise<void> }>();
	/** Repairs a stalled mirror; reads go to the origin while it stands still or is made anew. */
	private readonly watchdog: MirrorWatchdog | undefined;
	private mirrorUnfit = false;
	private closed = false;

	constructor(parts: StoreParts) {
		this.nc = parts.nc;
		this.local = parts.local;
		this.remote = parts.remote;
		this.ensureOrigin = parts.ensureOrigin;
		this.ensuring = parts.originReady;
		this.origin = parts.origin;
		this.reader = parts.reader;
		this.readStream = parts.readStream;
		this.originStream = `KV_${parts.bucket}`;
		this.subjectPrefix = `$KV.${parts.bucket}.`;
		this.timeoutMs = parts.timeoutMs;
		if (this.readStream !== this.originStream) {
			// Jittered, so that of a region's nodes one repairs and the others then see the mirror moving.
			this.watchdog = new MirrorWatchdog({
				jsm: this.local.jsm,
				originJsm: this.remote.jsm,
				mirror: this.readStream,
				origin: this.originStream,
				stallMs: parts.mirrorStallMs ?? 15_000 + Math.floor(Math.random() * 10_000),
				onEvent: e => {
					this.onMirrorEvent(e);
					parts.onMirrorEvent?.(e);
				}
			});
			this.watchdog.start();
		}
	}

	private onMirrorEvent(event: MirrorWatchdogEvent): void {
		// A stalled mirror is known to be behind the origin that answers: reading it would give old homes
		// for as long as a repair is held back (at most one per minRepairIntervalMs).
		if (event.type === "stalled" || event.type === "diverged" || event.type === "repairing" || event.type === "remade") this.mirrorUnfit = true;
		if (event.type === "resumed") this.mirrorUnfit = false;
		if (event.type === "repaired") {
			this.mirrorUnfit = false;
			for (const watch of this.watches) void watch.reopen().catch(() => undefined);
		}
	}

	async get<T>(key: string, opts: ReadOptions = {}): Promise<DirectoryEntry<T> | undefined> {
		assertKey(key);
		// The origin handle is bound without direct gets, so its reads are answered by the origin stream's leader.
		const source = opts.authoritative || this.mirrorUnfit ? this.origin : this.reader;
		return this.bounded("get", async () => {
			const entry = await source.get(key);
			if (entry?.operation !== "PUT") return undefined;
			return { key, value: entry.json<T>(), revision: entry.revision };
		});
	}

	async create<T>(key: string, value: T): Promise<number> {
		assertKey(key);
		const data = encode(value);
		// KV create also takes over a key whose latest message is a delete marker.
		return this.bounded("create", () => this.toOrigin(() => this.origin.create(key, data)), "KEY_EXISTS");
	}

	async update<T>(key: string, value: T, revision: number): Promise<number> {
		assertKey(key);
		assertRevision(revision);
		const data = encode(value);
		return this.bounded("update", () => this.toOrigin(() => this.origin.update(key, data, revision)), "REVISION_MISMATCH");
	}

	async delete(key: string, revision?: number): Promise<void> {
		assertKey(key);
		if (revision !== undefined) assertRevision(revision);
		const opts = revision === undefined ? undefined : { previousSeq: revision };
		await this.bounded("delete", () => this.toOrigin(() => this.origin.delete(key, opts)), "REVISION_MISMATCH");
	}

	async list<T>(prefix: string, opts: { afterRevision?: number; limit: number } & ReadOptions): Promise<DirectoryPage<T>> {
		assertPrefix(prefix);
		const { afterRevision = 0, limit } = opts;
		assertListBounds(afterRevision, limit);
		const fromOrigin = opts.authoritative || this.mirrorUnfit;
		const [api, stream] = fromOrigin ? [this.remote, this.originStream] : [this.local, this.readStream];
		return this.bounded("list", () => this.page<T>(api, stream, prefix, afterRevision, limit));
	}

	async watch<T>(onChange: (change: DirectoryChange<T>) => void, opts: { fromRevision?: number } = {}): Promise<DirectoryWatch> {
		const { fromRevision } = opts;
		if (fromRevision !== undefined) assertAfter("fromRevision", fromRevision);
		let stopped = false;
		/** The last revision delivered: a consumer opened again resumes after it. */
		let last = 0;
		const open = async (after: number | undefined) => {
			// "From now on" is pinned to a sequence rather than left to DeliverPolicy.New, so that a
			// consumer recreated after a server restart resumes where this one was instead of skipping.
			const start = after ?? (await this.local.jsm.streams.info(this.readStream)).state.last_seq;
			last = Math.max(last, start);
			const consumerOpts: Partial<OrderedConsumerOptions> = {
				filterSubjects: `${this.subjectPrefix}>`,
				opt_start_seq: start + 1
			};
			const consumer = await this.local.js.consumers.get(this.readStream, consumerOpts);
			const messages = await consumer.consume({
				expires: WATCH_EXPIRES_MS,
				callback: m => {
					if (stopped || m.seq <= last) return;
					last = m.seq;
					deliver(onChange, this.change<T>(m));
				}
			});
			return { consumer, messages };
		};
		const starting = open(fromRevision);
		const halt = async ({ consumer, messages }: { consumer: Consumer; messages: ConsumerMessages }) => {
			await messages.close();
			await consumer.delete().catch(() => false);
		};
		let started: Awaited<typeof starting>;
		try {
			started = await this.bounded("watch", () => starting);
		} catch (err) {
			stopped = true;
			// The consumer may still come up after the deadline: take it down then.
			starting.then(halt).catch(() => undefined);
			throw err;
		}
		const watch: DirectoryWatch & { reopen(): Promise<void> } = {
			stop: async () => {
				if (stopped) return;
				stopped = true;
				this.watches.delete(watch);
				await halt(started);
			},
			// After the mirror was made anew: a consumer on the old stream is gone with it.
			reopen: async () => {
				if (stopped) return;
				await halt(started).catch(() => undefined);
				started = await this.bounded("watch", () => open(last));
			}
		};
		this.watches.add(watch);
		return watch;
	}

	/**
	 * Asks the origin stream's leader whom it heard from lately: a write commits only on a quorum (the leader and
	 * half the other replicas). A leader cut off from its replicas goes on answering for seconds until it steps down.
	 */
	async checkOrigin(): Promise<void> {
		const info = await this.bounded("check origin", () => this.remote.jsm.streams.info(this.originStream));
		const { leader, replicas = [] } = info.cluster ?? {};
		if (info.cluster && !leader) throw new DirectoryError("DIRECTORY_UNAVAILABLE", `directory origin ${this.originStream} has no leader`);
		const needed = Math.floor(info.config.num_replicas / 2);
		const seen = replicas.filter(r => r.current && !r.offline && r.active <= nanos(REPLICA_SEEN_MS)).length;
		if (seen < needed)
			throw new DirectoryError(
				"DIRECTORY_UNAVAILABLE",
				`directory origin ${this.originStream}: its leader ${leader} heard from ${seen} of the ${needed} replicas a write needs within ${REPLICA_SEEN_MS} ms`
			);
	}

	async close(): Promise<void> {
		if (this.closed) return;
		this.closed = true;
		await this.watchdog?.stop();
		await Promise.allSettled([...this.watches].map(w => w.stop()));
		// Draining waits for the server; a server that is gone gets the connection closed instead.
		await this.bounded("close", () => this.nc.drain()).catch(() => this.nc.close());
	}

	/**
	 * Reads the stream from `afterRevision + 1` through a short-lived consumer filtered on the
	 * prefix, until the page is full and one more live entry proves there is a next page, or
	 * the consumer has nothing pending.
	 */
	private async page<T>(api: JetStreamApi, stream: string, prefix: string, afterRevision: number, limit: number): Promise<DirectoryPage<T>> {
		// A subject filter matches whole tokens: it narrows to the prefix's last dot, and keys are compared for the rest.
		const filter = `${this.subjectPrefix}${prefix.slice(0, prefix.lastIndexOf(".") + 1)}>`;
		const info = await api.jsm.consumers.add(stream, {
			deliver_policy: DeliverPolicy.StartSequence,
			opt_start_seq: afterRevision + 1,
			filter_subject: filter,
			ack_policy: AckPolicy.None,
			mem_storage: true,
			num_replicas: 1,
			inactive_threshold: nanos(PAGE_CONSUMER_IDLE_MS)
		});
		const consumer = api.js.consumers.getPullConsumerFor(info);
		const entries: DirectoryEntry<T>[] = [];
		let pending = info.num_pending;
		let more = false;
		try {
			while (pending > 0 && !more) {
				const batch = await consumer.fetch({
					max_messages: Math.min(pending, limit + 1 - entries.length),
					expires: FETCH_EXPIRES_MS
				});
				let received = 0;
				for await (const m of batch) {
					received++;
					pending = m.info.pending;
					const key = m.subject.slice(this.subjectPrefix.length);
					if (!isDelete(m.headers) && key.startsWith(prefix)) {
						if (entries.length === limit) {
							more = true;
							break;
						}
						entries.push({ key, value: m.json<T>(), revision: m.seq });
					}
					if (pending === 0) break;
				}
				if (received === 0) {
					// Nothing came: either the rest vanished under us (keys updated or deleted meanwhile), or
					// the server was slow. Only the consumer can tell; a page is never cut short silently.
					const now = await consumer.info();
					if (now.num_pending === 0) break;
					pending = now.num_pending;
				}
			}
		} finally {
			consumer.delete().catch(() => false);
		}
		return { entries, next: more ? entries[entries.length - 1]!.revision : null };
	}

	private change<T>(m: JsMsg): DirectoryChange<T> {
		return {
			key: m.subject.slice(this.subjectPrefix.length),
			value: isDelete(m.headers) ? undefined : m.json<T>(),
			revision: m.seq
		};
	}

	/** Runs a write once the origin bucket is known to exist; after a failed check (the hub was unreachable) it is checked again. */
	private async toOrigin<R>(write: () => Promise<R>): Promise<R> {
		try {
			await this.ensuring;
		} catch {
			this.ensuring = this.ensureOrigin();
			await this.ensuring;
		}
		return write();
	}

	/**
	 * Runs `op` within the store's timeout and turns what nats.js throws into the directory's
	 * errors: a failed expectation of the key's last sequence is the caller's `conflict`; a server
	 * or stream that cannot answer is DIRECTORY_UNAVAILABLE; anything else is a bug and stays as is.
	 */
	private async bounded<R>(what: string, op: () => Promise<R>, conflict?: DirectoryErrorCode): Promise<R> {
		let timer: ReturnType<typeof setTimeout> | undefined;
		const deadline = new Promise<never>((_, reject) => {
			timer = setTimeout(() => reject(new DirectoryError("DIRECTORY_UNAVAILABLE", `directory ${what} took over ${this.timeoutMs} ms`)), this.timeoutMs);
		});
		try {
			return await Promise.race([op(), deadline]);
		} catch (err) {
			throw translate(err, what, conflict);
		} finally {
			clearTimeout(timer);
		}
	}
}

/**
 * Connects and opens the buckets. With `originDomain` (production: the hub), this region's mirror
 * `<bucket>-<domain>` is made in its own JetStream, which answers even when nothing else does, so
 * a node starts with its region cut off; the origin bucket is created in the hub in the background
 * (writes wait for it, bounded), never holding up the start. Without it, the origin bucket is the
 * connected server's and reads come from it too.
 */
export async function openNatsKvDirectory(opts: NatsKvDirectoryOptions): Promise<NatsKvDirectoryStore> {
	const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
	if (opts.originDomain !== undefined && (opts.domain === undefined || opts.domain === opts.originDomain))
		throw new Error(`directory: a region reading from its own mirror needs its own JetStream domain, other than the origin's "${opts.originDomain}"`);
	let nc: NatsConnection;
	try {
		nc = await connect({
			servers: opts.servers,
			...opts.credentials,
			name: opts.name,
			timeout: timeoutMs,
			// The directory outlives any outage of its server: keep reconnecting, never give up.
			maxReconnectAttempts: -1,
			reconnectTimeWait: 500
		});
	} catch (err) {
		throw translate(err, `connect to ${opts.servers}`);
	}
	try {
		const api = async (domain?: string): Promise<JetStreamApi> => ({
			js: nc.jetstream({ timeout: timeoutMs, checkAPI: false, domain }),
			jsm: await nc.jetstreamManager({ timeout: timeoutMs, checkAPI: false, domain })
		});
		const local = await api();
		const remote = opts.originDomain === undefined ? local : await api(opts.originDomain);
		const originConfig = { history: 1, replicas: opts.originReplicas ?? 1 };
		const ensureOrigin = () => remote.js.views.kv(opts.bucket, originConfig);
		const originReady = ensureOrigin();
		// The hub may be out of reach: the region's start never waits for it; its first write does (bounded) and sees a failure.
		if (opts.originDomain === undefined) await originReady;
		else originReady.catch(() => undefined);
		// Bound without direct gets: mirrors answer the origin's direct gets too, and KV create must read the origin itself.
		const origin = await remote.js.views.kv(opts.bucket, { bindOnly: true });
		const readBucket = opts.originDomain === undefined ? opts.bucket : `${opts.bucket}-${opts.domain}`;
		if (opts.originDomain !== undefined)
			await local.js.views.kv(readBucket, {
				history: 1,
				// A mirror across domains reaches the origin through the hub domain's API prefix.
				mirror: { name: opts.bucket, external: { api: `$JS.${opts.originDomain}.API`, deliver: "" } }
			});
		const readStream = `KV_${readBucket}`;
		const { config } = await local.jsm.streams.info(readStream);
		if (config.max_msgs_per_subject !== 1)
			throw new Error(`directory stream ${readStream} keeps ${config.max_msgs_per_subject} messages per key; it must keep 1 (history 1)`);
		// A mirror stores the origin's subjects: a handle named after the origin but bound to the
		// mirror's stream reads them right (nats.js's own handle on a mirror looks under the mirror's name).
		const reader = await local.js.views.kv(opts.bucket, {
			bindOnly: true,
			streamName: readStream,
			allow_direct: config.allow_direct === true
		});
		return new NatsKvDirectoryStore({
			nc,
			local,
			remote,
			origin,
			reader,
			bucket: opts.bucket,
			readStream,
			ensureOrigin,
			originReady,
			timeoutMs,
			mirrorStallMs: opts.mirrorStallMs,
			onMirrorEvent: opts.onMirrorEvent
		});
	} catch (err) {
		await nc.close();
		throw translate(err, `open bucket ${opts.bucket}`);
	}
}

function isUnavailable(err: unknown): boolean {
	if (!(err instanceof NatsError)) return false;
	const api = err.api_error;
	return UNAVAILABLE_CODES.has(err.code) || api?.code === 503 || UNAVAILABLE_API_ERRORS.has(api?.err_code ?? 0);
}

function translate(err: unknown, what: string, conflict?: DirectoryErrorCode): unknown {
	if (err instanceof DirectoryError || !(err instanceof NatsError)) return err;
	if (conflict && err.api_error?.err_code === WRONG_LAST_SEQUENCE)
		return new DirectoryError(conflict, `directory ${what} refused: ${err.message}`, { cause: err });
	if (isUnavailable(err)) return new DirectoryError("DIRECTORY_UNAVAILABLE", `directory ${what} failed: ${err.message}`, { cause: err });
	return err;
}

function isDelete(headers: MsgHdrs | undefined): boolean {
	const op = headers?.get("KV-Operation");
	return op === "DEL" || op === "PURGE";
}

/** `undefined` is how a change says "deleted", so it cannot be a value. */
function encode(value: unknown): Uint8Array {
	if (value === undefined) throw new TypeError("a directory value must be JSON-serialisable");
	return json.encode(value);
}
