import { randomBytes } from "node:crypto";
import type { Server } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { BrokerOptions, CallingOptions, Context, ServiceBroker } from "moleculer";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { contextOf, withTraceHeaders } from "../../../../../mixins/channels/trace-headers.ts";
import { traceContext } from "../../../../../mixins/gateway/trace-context.ts";
import { currentTrace } from "../../../../../regions/runtime/request-context.ts";
import { consumed } from "../../../../../regions/runtime/tracing/channel-spans.ts";
import { httpServerSpan } from "../../../../../regions/runtime/tracing/http-server-span.ts";
import type { ProcessTracing } from "../../../../../regions/runtime/tracing/process-sdk.ts";
import { linkHop, withRoutingSpan } from "../../../../../regions/runtime/tracing/route-spans.ts";
import type { SqlStore } from "../../../../../regions/stores/sql.ts";
import { openSqlStore } from "../../../../../regions/stores/sql.ts";
import type { OtlpReceiver } from "../../../../harness/otlp-receiver.ts";
import { startOtlpReceiver } from "../../../../harness/otlp-receiver.ts";
import { within } from "../../../../harness/waiting.ts";
import { capturedLog, tracedBroker, traceTo } from "./traced-broker.ts";

let receiver: OtlpReceiver;
let tracing: ProcessTracing | undefined;
let store: SqlStore;
let brokers: ServiceBroker[] = [];
let server: Server | undefined;
const { log, lines } = capturedLog();

beforeAll(async () => {
	receiver = await startOtlpReceiver();
	store = await openSqlStore("sqlite::memory:");
});
afterAll(async () => {
	await store?.close();
	await receiver?.stop();
});
afterEach(async () => {
	await new Promise(resolve => (server ? server.close(resolve) : resolve(undefined)));
	server = undefined;
	await Promise.all(brokers.map(b => b.stop()));
	brokers = [];
	await tracing?.stop();
	tracing = undefined;
	receiver.spans.length = 0;
	lines.length = 0;
});

/** What the handlers saw of their trace. */
interface Seen {
	channelTraceparent?: string;
	link?: unknown;
	routed?: boolean;
	back?: { requestID: string | null; parentID: string | null; tracing: boolean | null };
}

/**
 * A gateway node (`front`, sampling at `frontRatio`, the process's ratio) and another node (`back`,
 * always sampling what starts there, as a node of another process might) on one in-process bus. `front.enter` logs a line, runs a query, builds a
 * channel message's headers and a link hop's options, and calls `back.work` on the other node.
 * An HTTP server in front does what a gateway's `rootCallOptions` does.
 */
async function twoNodes(frontRatio: string) {
	const namespace = `unsampled-${randomBytes(4).toString("hex")}`;
	const bus: BrokerOptions = { transporter: "Fake", namespace };
	tracing = traceTo(receiver, "cn-east", { EDGEHOME_TRACE_SAMPLE_RATIO: frontRatio });
	const front = tracedBroker("cn-east", `${namespace}-front`, bus);
	const back = tracedBroker("cn-east", `${namespace}-back`, bus);
	// The ratio is the process's: `back` keeps every trace it starts by a decision of its own.
	back.tracer.shouldSample = () => true;
	brokers.push(front, back);
	const seen: Seen = {};
	front.createService({
		name: "front",
		actions: {
			async enter(ctx: Context) {
				log.info("entering");
				await store.db.selectNoFrom(eb => eb.val(1).as("one")).execute();
				seen.channelTraceparent = withTraceHeaders({}, ctx).traceparent;
				const options: CallingOptions = { parentCtx: ctx };
				seen.routed = withRoutingSpan(options, "back.work") !== options;
				seen.link = linkHop(true, options, "eu-central", "back.work", 1);
				seen.back = await ctx.call("back.work", {});
				return seen.back;
			}
		}
	});
	back.createService({
		name: "back",
		actions: {
			work(ctx: Context) {
				log.info("working");
				return { requestID: ctx.requestID, parentID: ctx.parentID, tracing: ctx.tracing };
			}
		}
	});
	await Promise.all([front.start(), back.start()]);
	await front.waitForServices("back");
	const spansMade = [vi.spyOn(front.tracer, "startSpan"), vi.spyOn(back.tracer, "startSpan")];
	server = createServer(async (req, res) => {
		const trace = traceContext(req.headers);
		const parentSpan = httpServerSpan(front, "api-test", req, res, trace);
		res.setHeader("x-request-id", trace.requestId);
		if (trace.traceparent) res.setHeader("traceparent", trace.traceparent);
		const answer = await front.call("front.enter", {}, { requestID: trace.requestId, parentSpan } as CallingOptions);
		res.setHeader("content-type", "application/json").end(JSON.stringify(answer));
	});
	await new Promise<void>(resolve => server!.listen(0, "127.0.0.1", resolve));
	const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
	return { front, back, seen, url, spansMade: () => spansMade.reduce((n, spy) => n + spy.mock.calls.length, 0) };
}

describe("an unsampled trace: no span anywhere, its trace context carried on", () => {
	it("makes no span and exports nothing for a request whose caller did not sample it, yet carries its trace id and decision to the next node, messages, links and logs", async () => {
		const nodes = await twoNodes("1");
		const traceId = randomBytes(16).toString("hex");
		const res = await fetch(nodes.url, { headers: { traceparent: `00-${traceId}-${"b7ad6b7169203331"}-00` } });
		expect(res.status).toBe(200);
		// The response names the same trace, a span of ours and the caller's decision.
		const answered = res.headers.get("traceparent");
		expect(answered).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-00$`));
		expect(answered).not.toContain("b7ad6b7169203331");

		// The other node continued the trace and kept the decision, though it samples everything it starts.
		const back = nodes.seen.back!;
		expect(back).toMatchObject({ requestID: traceId, tracing: false });
		expect(back.parentID).toMatch(/^[0-9a-f-]{36}$/);
		// A message and a link hop name the handler as their parent, unsampled; no routing span was opened.
		expect(nodes.seen.channelTraceparent).toBe(`00-${traceId}-${back.parentID!.replaceAll("-", "").slice(0, 16)}-00`);
		expect(nodes.seen.link).toEqual({ options: { parentSpan: { id: back.parentID, traceID: traceId, sampled: false } } });
		expect(nodes.seen.routed).toBe(false);
		// Log lines on both nodes lead to the trace.
		expect(lines.find(l => l.msg === "entering")).toMatchObject({ trace_id: traceId, trace_flags: "00" });
		expect(lines.find(l => l.msg === "working")).toMatchObject({ trace_id: traceId, trace_flags: "00" });

		// Not one span was made: no HTTP, action, query, message or route span, on either node.
		expect(nodes.spansMade()).toBe(0);
		await Promise.all(brokers.map(b => b.stop()));
		brokers = [];
		expect(receiver.spans).toHaveLength(0);
	});

	it("makes no span for a trace it starts and does not sample (ratio 0), and the node it calls follows that decision", async () => {
		const nodes = await twoNodes("0");
		const res = await fetch(nodes.url);
		expect(res.status).toBe(200);
		expect(res.headers.get("traceparent")).toBeNull();
		expect(nodes.seen.back).toMatchObject({ requestID: res.headers.get("x-request-id"), tracing: false });
		expect(nodes.spansMade()).toBe(0);
		await Promise.all(brokers.map(b => b.stop()));
		brokers = [];
		expect(receiver.spans).toHaveLength(0);
	});

	it("still makes every span of a trace its caller sampled, whatever the ratio: one trace over both nodes", async () => {
		const nodes = await twoNodes("0");
		const traceId = randomBytes(16).toString("hex");
		const res = await fetch(nodes.url, { headers: { traceparent: `00-${traceId}-b7ad6b7169203331-01` } });
		expect(res.headers.get("traceparent")).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
		expect(nodes.seen.back).toMatchObject({ requestID: traceId, tracing: true });
		expect(nodes.seen.routed).toBe(true);
		expect(nodes.spansMade()).toBeGreaterThan(0);
		await within(() => ["GET", "front/enter", "SELECT", "back/work"].every(name => receiver.spans.some(s => s.name.startsWith(name))), 5000);
		expect(new Set(receiver.spans.map(s => s.traceId))).toEqual(new Set([traceId]));
		expect(lines.find(l => l.msg === "working")).toMatchObject({ trace_id: traceId, trace_flags: "01" });
	});

	it("handles a channel message of an unsampled trace without a span, in its trace", async () => {
		const nodes = await twoNodes("1");
		const traceId = randomBytes(16).toString("hex");
		const headers = { traceparent: `00-${traceId}-b7ad6b7169203331-00`, "x-request-id": "req-unsampled-1" };
		const ctx = contextOf(nodes.front, { n: 1 }, headers, "test");
		const facts = { store: "sqlite" as const, channel: "notes.added", group: "test", id: "m1", attempt: 1, traceparent: headers.traceparent };
		const inside = await consumed(ctx, facts, async () => currentTrace());
		expect(inside).toEqual({ id: ctx.id, traceID: traceId, sampled: false });
		expect(ctx.tracing).toBe(false);
		expect(nodes.spansMade()).toBe(0);
	});
});

describe("the action spans of a sampled trace", () => {
	it("cover what runs around the handler: a call refused by validation still has its span", async () => {
		tracing = traceTo(receiver, "cn-east", { EDGEHOME_TRACE_SAMPLE_RATIO: "1" });
		const broker = tracedBroker("cn-east", "validated");
		brokers.push(broker);
		broker.createService({ name: "sums", actions: { add: { params: { n: "number" }, handler: (ctx: Context<{ n: number }>) => ctx.params.n + 1 } } });
		await broker.start();
		await expect(broker.call("sums.add", { n: "one" })).rejects.toMatchObject({ type: "VALIDATION_ERROR" });
		await within(() => receiver.spans.length === 1, 5000);
		expect(receiver.spans[0]).toMatchObject({ name: "sums/add", status: { code: "STATUS_CODE_UNSET" }, attributes: { "error.type": "VALIDATION_ERROR" } });
	});
});
