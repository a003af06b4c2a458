import type { HttpAnswer } from "./gateways.ts";
import { answerOf } from "./gateways.ts";

/** One Server-Sent Event as a client dispatches it, with when it arrived. */
export interface StreamEvent {
	event: string;
	data: string;
	/** The stream's last event id once this event was dispatched (an event without `id:` keeps the previous one). */
	lastEventId: string;
	/** Whether this event carried an `id:` line itself. */
	hasId: boolean;
	at: number;
}

/**
 * An event stream read as EventSource reads it (the WHATWG parsing rules: fields, comments, blank
 * lines dispatching), over Node's fetch: the events, the comments (heartbeats) and `retry:`.
 */
export class EventStreamClient {
	readonly status: number;
	readonly headers: Headers;
	readonly events: StreamEvent[] = [];
	/** When each comment line arrived. */
	readonly comments: number[] = [];
	retry: number | undefined;
	/** Resolves when the server ends the stream (or it breaks). */
	readonly ended: Promise<void>;
	private readonly abort: AbortController;
	private waiters: (() => void)[] = [];
	private done = false;

	constructor(res: Response, abort: AbortController) {
		this.status = res.status;
		this.headers = res.headers;
		this.abort = abort;
		this.ended = this.read(res.body!).finally(() => {
			this.done = true;
			this.wake();
		});
	}

	get isEnded(): boolean {
		return this.done;
	}

	/** Events named `event` so far. */
	named(event: string): StreamEvent[] {
		return this.events.filter(e => e.event === event);
	}

	/** Waits until `check` holds of what arrived, failing after `ms`. */
	async until(check: () => boolean, ms: number, what = "the stream to hold what was expected"): Promise<void> {
		const deadline = Date.now() + ms;
		while (!check()) {
			const left = deadline - Date.now();
			if (left <= 0 || this.done) {
				if (check()) return;
				throw new Error(
					`${this.done ? "stream ended" : `timed out after ${ms} ms`} waiting for ${what}; events: ${JSON.stringify(this.events.map(e => [e.event, e.lastEventId, e.data]))}`
				);
			}
			await new Promise<void>(resolve => {
				const timer = setTimeout(resolve, left);
				this.waiters.push(() => {
					clearTimeout(timer);
					resolve();
				});
			});
		}
	}

	/** The client goes away (as a closed tab does). */
	close(): void {
		this.abort.abort();
	}

	private wake(): void {
		for (const w of this.waiters.splice(0)) w();
	}

	private async read(body: ReadableStream<Uint8Array>): Promise<void> {
		const decoder = new TextDecoder();
		let buffer = "";
		let event = { type: "", data: [] as string[], hasId: false };
		let lastEventId = "";
		const line = (text: string) => {
			if (text === "") {
				if (event.data.length)
					this.events.push({ event: event.type || "message", data: event.data.join("\n"), lastEventId, hasId: event.hasId, at: Date.now() });
				event = { type: "", data: [], hasId: false };
				return;
			}
			if (text.startsWith(":")) return void this.comments.push(Date.now());
			const colon = text.indexOf(":");
			const field = colon === -1 ? text : text.slice(0, colon);
			const value = colon === -1 ? "" : text.slice(colon + 1).replace(/^ /, "");
			if (field === "event") event.type = value;
			else if (field === "data") event.data.push(value);
			else if (field === "id") {
				lastEventId = value;
				event.hasId = true;
			} else if (field === "retry" && /^[0-9]+$/.test(value)) this.retry = Number(value);
		};
		const reader = body.getReader();
		try {
			for (;;) {
				const { done, value } = await reader.read();
				if (done) return;
				buffer += decoder.decode(value, { stream: true });
				let end = buffer.search(/\r\n|\r|\n/);
				while (end !== -1) {
					line(buffer.slice(0, end));
					buffer = buffer.slice(end + (buffer.startsWith("\r\n", end) ? 2 : 1));
					end = buffer.search(/\r\n|\r|\n/);
				}
				this.wake();
			}
		} catch {
			// Aborted by close(), or the connection broke: the stream is over either way.
		}
	}
}

/**
 * Opens `path` as an event stream; an answer that is not one (an error) is read in full and
 * returned as `refused`, as the other helpers answer.
 */
export async function openEventStream(
	base: string,
	path: string,
	opts: { token?: string; lastEventId?: string; headers?: Record<string, string> } = {}
): Promise<{ stream?: EventStreamClient; refused?: HttpAnswer }> {
	const headers: Record<string, string> = { accept: "text/event-stream", ...opts.headers };
	if (opts.token) headers.authorization = `Bearer ${opts.token}`;
	if (opts.lastEventId !== undefined) headers["last-event-id"] = opts.lastEventId;
	const abort = new AbortController();
	const res = await fetch(`${base}${path}`, { headers, signal: abort.signal });
	if (res.status === 200 && (res.headers.get("content-type") ?? "").startsWith("text/event-stream")) return { stream: new EventStreamClient(res, abort) };
	return { refused: await answerOf(res) };
}
