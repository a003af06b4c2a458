import type { ServerResponse } from "node:http";
import { Errors } from "moleculer";

/**
 * A gateway's open Server-Sent Events responses, by user. A stream route registers its response
 * here; the gateway's listeners publish to a user's streams of one topic. One timer writes every
 * stream's heartbeat and asks again whether each may go on (its session not ended, its token not
 * expired); a client too slow to take its events is cut off (it resumes from its last event id);
 * the gateway's stop ends every stream before its server closes.
 */

export interface StreamLimits {
	/** Streams one user may hold open on this gateway; the next is refused (429 TOO_MANY_STREAMS). */
	perUser: number;
	/** Streams this gateway holds open in all; the next is refused (503: another node may take it). */
	total: number;
	/** How often a comment line keeps the stream, and every proxy on its way, from timing out. */
	heartbeatMs: number;
	/** The reconnection delay the client is told (`retry:`). */
	retryMs: number;
	/** Bytes a stream may have waiting for a slow client before it is cut off. */
	maxBufferedBytes: number;
}

export class TooManyStreamsError extends Errors.MoleculerClientError {
	constructor(limit: number) {
		super(`at most ${limit} live streams per user: close one first`, 429, "TOO_MANY_STREAMS", { limit });
	}
}

/** This gateway holds as many streams as it may, or is stopping: the client retries, reaching another node. */
export class StreamsUnavailableError extends Errors.MoleculerError {
	constructor(reason: string) {
		super(`no live stream available here: ${reason}`, 503, "STREAMS_UNAVAILABLE", { retryAfter: 5 });
	}
}

/** The status and headers an event stream starts with (HEAD answers them alone). */
export function setStreamHeaders(res: ServerResponse): void {
	res.statusCode = 200;
	res.setHeader("Content-Type", "text/event-stream; charset=utf-8");
	// Proxies that buffer answers (nginx) pass this one on as it is written.
	res.setHeader("X-Accel-Buffering", "no");
}

/** What a stream does with a message published to its user and topic. */
export type StreamReceiver = (message: unknown) => void;

/** Whether a stream may go on: asked at every heartbeat; no ends the stream. */
export type StreamCheck = () => Promise<boolean>;

/** One open event stream: its events are written in the order `send` is called. */
export class EventStream {
	readonly userId: string;
	readonly topic: string;
	private readonly res: ServerResponse;
	private readonly maxBufferedBytes: number;
	private readonly check: StreamCheck | undefined;
	private receiver: StreamReceiver = () => undefined;
	private ended = false;
	private checking = false;

	constructor(res: ServerResponse, userId: string, topic: string, maxBufferedBytes: number, check?: StreamCheck) {
		this.res = res;
		this.userId = userId;
		this.topic = topic;
		this.maxBufferedBytes = maxBufferedBytes;
		this.check = check;
	}

	get closed(): boolean {
		return this.ended || this.res.destroyed || this.res.writableEnded;
	}

	/** Where the messages published to this stream go. */
	receiveWith(receiver: StreamReceiver): void {
		this.receiver = receiver;
	}

	deliver(message: unknown): void {
		if (!this.closed) this.receiver(message);
	}

	/** An event: its JSON data on one line (JSON escapes line breaks), and its id when it has one. */
	send(event: string, data: unknown, id?: number): void {
		this.write(`${id === undefined ? "" : `id: ${id}\n`}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
	}

	/** A comment line; then, unless the last one is still pending, the check whether the stream may go on. */
	heartbeat(): void {
		this.write(":\n\n");
		if (!this.check || this.checking || this.closed) return;
		this.checking = true;
		this.check()
			.then(
				allowed => allowed || this.close(),
				() => undefined
			)
			.finally(() => {
				this.checking = false;
			});
	}

	/** Ends the response cleanly: the client sees the stream end and reconnects after its retry delay. */
	close(): void {
		if (this.closed) return;
		this.ended = true;
		this.res.end();
	}

	/** Drops the connection: for a client that takes nothing, which a clean end would wait for. */
	drop(): void {
		this.ended = true;
		this.res.destroy();
	}

	write(frame: string): void {
		if (this.closed) return;
		this.res.write(frame);
		// A client that does not read: its events pile up here. Cut off, it resumes from its last event id.
		if (this.res.writableLength > this.maxBufferedBytes) this.drop();
	}
}

/** How long a stopping gateway waits for its streams' clients to take their end. */
const STOP_GRACE_MS = 1000;

export class LiveStreams {
	readonly limits: StreamLimits;
	private readonly byUser = new Map<string, Set<EventStream>>();
	private count = 0;
	private stopping = false;
	private ticker: NodeJS.Timeout | undefined;
	/** Called when the last stream is gone (a stop waits for it). */
	private emptied: (() => void) | undefined;

	constructor(limits: StreamLimits) {
		this.limits = limits;
	}

	get size(): number {
		return this.count;
	}

	/**
	 * Answers `res` as an event stream of `userId`'s on `topic`: the headers and the retry delay
	 * at once, then whatever is sent, for as long as `check` says yes. Refused past the per-user and
	 * total limits, and once stopping.
	 */
	open(res: ServerResponse, userId: string, topic: string, check?: StreamCheck): EventStream {
		if (this.stopping) throw new StreamsUnavailableError("this gateway is stopping");
		if (this.count >= this.limits.total) throw new StreamsUnavailableError("this gateway holds as many streams as it may");
		const mine = this.byUser.get(userId) ?? new Set<EventStream>();
		if (mine.size >= this.limits.perUser) throw new TooManyStreamsError(this.limits.perUser);

		const stream = new EventStream(res, userId, topic, this.limits.maxBufferedBytes, check);
		mine.add(stream);
		this.byUser.set(userId, mine);
		this.count++;
		res.once("close", () => this.forget(stream));
		setStreamHeaders(res);
		res.flushHeaders();
		stream.write(`retry: ${this.limits.retryMs}\n\n`);
		this.ticker ??= setInterval(() => this.beat(), this.limits.heartbeatMs).unref();
		return stream;
	}

	/** To each of the user's streams on `topic`. */
	publish(topic: string, userId: string, message: unknown): void {
		const mine = this.byUser.get(userId);
		if (mine) for (const stream of mine) if (stream.topic === topic) stream.deliver(message);
	}

	/**
	 * Ends every stream and refuses new ones: the gateway is stopping. A stream whose client has not
	 * taken its end within `graceMs` is dropped, so the server's close does not wait on it.
	 */
	async stop(graceMs = STOP_GRACE_MS): Promise<void> {
		this.stopping = true;
		clearInterval(this.ticker);
		this.ticker = undefined;
		for (const stream of this.streams()) stream.close();
		if (this.count > 0) {
			let timer: NodeJS.Timeout | undefined;
			await Promise.race([new Promise<void>(resolve => (this.emptied = resolve)), new Promise(resolve => (timer = setTimeout(resolve, graceMs)))]);
			clearTimeout(timer);
		}
		for (const stream of this.streams()) stream.drop();
	}

	private streams(): EventStream[] {
		return [...this.byUser.values()].flatMap(mine => [...mine]);
	}

	private beat(): void {
		for (const stream of this.streams()) stream.heartbeat();
	}

	private forget(stream: EventStream): void {
		const mine = this.byUser.get(stream.userId);
		if (!mine?.delete(stream)) return;
		this.count--;
		if (mine.size === 0) this.byUser.delete(stream.userId);
		if (this.count === 0) {
			clearInterval(this.ticker);
			this.ticker = undefined;
			this.emptied?.();
		}
	}
}
