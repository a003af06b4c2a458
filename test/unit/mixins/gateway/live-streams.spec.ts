import type { Server, ServerResponse } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { EventStream, StreamLimits } from "../../../../mixins/gateway/live-streams.ts";
import { LiveStreams } from "../../../../mixins/gateway/live-streams.ts";
import type { EventStreamClient } from "../../../harness/event-stream.ts";
import { openEventStream } from "../../../harness/event-stream.ts";

/** The hub of a gateway's event streams behind a plain HTTP server: limits, heartbeats, publishing, stopping, slow clients. */

const LIMITS: StreamLimits = { perUser: 2, total: 3, heartbeatMs: 100, retryMs: 750, maxBufferedBytes: 64 * 1024 };

let server: Server | undefined;
const clients: EventStreamClient[] = [];

afterEach(async () => {
	for (const c of clients.splice(0)) c.close();
	server?.closeAllConnections();
	await new Promise(resolve => server?.close(resolve) ?? resolve(undefined));
	server = undefined;
});

/** A server whose every request opens a stream of the `user` query parameter's (refusals answered as status and code). */
async function serve(hub: LiveStreams, onOpen: (stream: EventStream) => void = () => undefined, check?: (user: string) => Promise<boolean>): Promise<string> {
	server = createServer((req, res: ServerResponse) => {
		const user = new URL(req.url!, "http://x").searchParams.get("user")!;
		try {
			const stream = hub.open(res, user, "news", check && (() => check(user)));
			stream.receiveWith(message => stream.send("news", message));
			onOpen(stream);
		} catch (err) {
			const e = err as { code: number; type: string };
			res.statusCode = e.code;
			res.end(JSON.stringify({ error: { code: e.type } }));
		}
	});
	await new Promise<void>(resolve => server!.listen(0, "127.0.0.1", resolve));
	return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function open(base: string, user: string): Promise<EventStreamClient> {
	const { stream, refused } = await openEventStream(base, `/?user=${user}`);
	expect(refused?.text ?? "").toBe("");
	clients.push(stream!);
	return stream!;
}

const until = async (check: () => boolean) => {
	for (let i = 0; i < 200 && !check(); i++) await new Promise(r => setTimeout(r, 10));
	expect(check()).toBe(true);
};

describe("LiveStreams", () => {
	it("answers an event stream with the retry delay, then publishes to the user's streams of the topic only", async () => {
		const hub = new LiveStreams(LIMITS);
		const base = await serve(hub);
		const [a1, a2, b] = [await open(base, "a"), await open(base, "a"), await open(base, "b")];
		expect(a1.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
		expect(a1.headers.get("x-accel-buffering")).toBe("no");
		await until(() => a1.retry === 750);
		hub.publish("news", "a", { n: 1 });
		hub.publish("other", "a", { n: 2 });
		hub.publish("news", "c", { n: 3 });
		await until(() => a1.events.length === 1 && a2.events.length === 1);
		expect(a1.events[0]).toMatchObject({ event: "news", data: '{"n":1}' });
		expect(b.events).toEqual([]);
		expect(hub.size).toBe(3);
	});

	it("refuses a user's stream past the per-user limit (429) and any past the total (503), and counts a closed one out", async () => {
		const hub = new LiveStreams(LIMITS);
		const base = await serve(hub);
		const first = await open(base, "a");
		await open(base, "a");
		const third = await openEventStream(base, "/?user=a");
		expect({ status: third.refused?.status, body: third.refused?.body }).toEqual({ status: 429, body: { error: { code: "TOO_MANY_STREAMS" } } });
		await open(base, "b");
		const fourth = await openEventStream(base, "/?user=c");
		expect({ status: fourth.refused?.status, body: fourth.refused?.body }).toEqual({ status: 503, body: { error: { code: "STREAMS_UNAVAILABLE" } } });
		first.close();
		await until(() => hub.size === 2);
		await open(base, "a");
	});

	it("writes a heartbeat comment to every stream, and stops when none is open", async () => {
		const hub = new LiveStreams(LIMITS);
		const base = await serve(hub);
		const s = await open(base, "a");
		await until(() => s.comments.length >= 3);
		s.close();
		await until(() => hub.size === 0);
		expect((hub as unknown as { ticker: unknown }).ticker).toBeUndefined();
	});

	it("asks at each heartbeat whether a stream may go on, and ends the ones that may not", async () => {
		const hub = new LiveStreams(LIMITS);
		const revoked = new Set<string>();
		let checks = 0;
		const base = await serve(hub, undefined, async user => {
			checks++;
			if (user === "flaky") throw new Error("cannot tell now");
			return !revoked.has(user);
		});
		const [a, b, flaky] = [await open(base, "a"), await open(base, "b"), await open(base, "flaky")];
		await until(() => checks >= 6);
		revoked.add("a");
		await a.ended;
		await until(() => b.comments.length >= a.comments.length + 2);
		expect([a.isEnded, b.isEnded, flaky.isEnded]).toEqual([true, false, false]);
	});

	it("ends every stream cleanly on stop, then refuses new ones (503)", async () => {
		const hub = new LiveStreams(LIMITS);
		const base = await serve(hub);
		const streams = [await open(base, "a"), await open(base, "b")];
		const started = Date.now();
		await hub.stop();
		expect(Date.now() - started).toBeLessThan(500);
		expect(hub.size).toBe(0);
		await Promise.all(streams.map(s => s.ended));
		const after = await openEventStream(base, "/?user=a");
		expect(after.refused?.status).toBe(503);
	});

	it("drops a stream whose client takes nothing once the stop's grace is over, so the server can close", async () => {
		const hub = new LiveStreams({ ...LIMITS, maxBufferedBytes: 64 * 1024 * 1024 });
		let opened: EventStream | undefined;
		const base = await serve(hub, stream => (opened = stream));
		const res = await fetch(`${base}/?user=a`);
		// Far more than the socket takes while the client reads nothing: the clean end waits behind it.
		for (let i = 0; i < 64; i++) opened!.send("news", "x".repeat(256 * 1024));
		const started = Date.now();
		await hub.stop(200);
		expect(Date.now() - started).toBeGreaterThanOrEqual(190);
		expect(opened!.closed).toBe(true);
		await until(() => hub.size === 0);
		await new Promise<void>(resolve => server!.close(() => resolve()));
		server = undefined;
		await res.body?.cancel().catch(() => undefined);
	});

	it("cuts off a client that does not read once its events pile up past the limit", async () => {
		const hub = new LiveStreams({ ...LIMITS, maxBufferedBytes: 16 * 1024 });
		let opened: EventStream | undefined;
		const base = await serve(hub, stream => (opened = stream));
		// A client that reads nothing after the headers: fetch's body is never consumed.
		const res = await fetch(`${base}/?user=a`);
		expect(res.status).toBe(200);
		const big = "x".repeat(64 * 1024);
		for (let i = 0; i < 200 && !opened!.closed; i++) {
			hub.publish("news", "a", big);
			await new Promise(r => setTimeout(r, 1));
		}
		expect(opened!.closed).toBe(true);
		await until(() => hub.size === 0);
		await res.body?.cancel().catch(() => undefined);
	});
});
