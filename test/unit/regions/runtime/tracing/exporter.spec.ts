import type { Context, ServiceBroker } from "moleculer";
import { Errors } from "moleculer";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { EnvError } from "../../../../../regions/runtime/env.ts";
import { otlpCollector } from "../../../../../regions/runtime/tracing/collector.ts";
import { brokerTracing } from "../../../../../regions/runtime/tracing/config.ts";
import type { ProcessTracing } from "../../../../../regions/runtime/tracing/process-sdk.ts";
import { runningProcessTracing, startProcessTracing } from "../../../../../regions/runtime/tracing/process-sdk.ts";
import type { OtlpReceiver } from "../../../../harness/otlp-receiver.ts";
import { startOtlpReceiver } from "../../../../harness/otlp-receiver.ts";
import { within } from "../../../../harness/waiting.ts";
import { tracedBroker, traceTo } from "./traced-broker.ts";

let receiver: OtlpReceiver;
let tracing: ProcessTracing | undefined;
const brokers: ServiceBroker[] = [];

beforeAll(async () => {
	receiver = await startOtlpReceiver();
});
afterAll(() => receiver.stop());
afterEach(async () => {
	await Promise.all(brokers.splice(0).map(b => b.stop()));
	await tracing?.stop();
	tracing = undefined;
	receiver.spans.length = 0;
});

/** The process's tracing started anew, as a process of `region` configured by `env`. */
async function retrace(env: Record<string, string> = {}, region = "cn-east"): Promise<void> {
	await tracing?.stop();
	tracing = traceTo(receiver, region, env);
}

/** A broker of region `region` exporting to the receiver, with an `orders` service: `place` calls `price` and fails on demand. */
async function ordersBroker(region = "cn-east"): Promise<ServiceBroker> {
	const broker = tracedBroker(region, `${region}-test-${brokers.length}`);
	broker.createService({
		name: "orders",
		actions: {
			place: {
				params: { email: "string", fail: { type: "boolean", optional: true }, crash: { type: "boolean", optional: true } },
				async handler(ctx: Context<{ email: string; fail?: boolean; crash?: boolean }>) {
					if (ctx.params.fail) throw new Errors.MoleculerClientError(`no such buyer ${ctx.params.email}`, 404, "BUYER_NOT_FOUND");
					if (ctx.params.crash) throw new Error(`database down while serving ${ctx.params.email}`);
					return ctx.call("orders.price", { email: ctx.params.email });
				}
			},
			price: { params: { email: "string" }, handler: () => 42 }
		}
	});
	brokers.push(broker);
	await broker.start();
	return broker;
}

describe("the Moleculer to OTel exporter", () => {
	beforeEach(() => retrace());

	it("exports each action as an OTLP protobuf span with Moleculer's ids, parent, times, its region and node, and the process's resource", async () => {
		const broker = await ordersBroker();
		const before = Date.now();
		expect(await broker.call("orders.place", { email: "ann@example.com" })).toBe(42);
		await within(() => receiver.spans.length === 2, 5000);
		expect(receiver.contentTypes.every(t => t === "application/x-protobuf")).toBe(true);
		const place = receiver.spans.find(s => s.name === "orders/place")!;
		const price = receiver.spans.find(s => s.name === "orders/price")!;
		expect(place).toMatchObject({ kind: "SPAN_KIND_INTERNAL", parentSpanId: "", status: { code: "STATUS_CODE_UNSET" } });
		expect(place.traceId).toMatch(/^[0-9a-f]{32}$/);
		expect(price.traceId).toBe(place.traceId);
		expect(price.parentSpanId).toBe(place.spanId);
		expect(place.attributes).toMatchObject({
			"rpc.system": "moleculer",
			"rpc.service": "orders",
			"rpc.method": "place",
			"edgehome.region": "cn-east",
			"edgehome.node": broker.nodeID
		});
		expect(place.startMs).toBeGreaterThanOrEqual(before - 1);
		expect(place.endMs).toBeGreaterThanOrEqual(price.endMs);
		expect(place.resource).toMatchObject({
			"service.name": "edgehome",
			"service.namespace": "edgehome",
			"service.instance.id": expect.stringMatching(/^[0-9a-f-]{36}$/),
			"cloud.region": "cn-east",
			"edgehome.region": "cn-east",
			"edgehome.group": "test",
			"telemetry.sdk.language": "nodejs"
		});
		// Light and impersonal: no host, process, command line or user name.
		expect(Object.keys(place.resource).filter(key => /^(host|process|os)\./.test(key))).toEqual([]);
		// Params (an e-mail here) never become attributes.
		expect(JSON.stringify(receiver.spans)).not.toContain("ann@example.com");
	});

	it("names the regions of a process holding several in its resource, and each span's own region and node", async () => {
		await tracing?.stop();
		tracing = startProcessTracing(
			{ EDGEHOME_OTLP_URL: receiver.url, EDGEHOME_TRACE_EXPORT_DELAY_MS: "20" },
			{ regions: ["cn-east", "eu-central"], group: "all" }
		);
		const cn = await ordersBroker("cn-east");
		const eu = await ordersBroker("eu-central");
		await cn.call("orders.price", { email: "x@example.com" });
		await eu.call("orders.price", { email: "x@example.com" });
		await within(() => receiver.spans.length === 2, 5000);
		expect(receiver.spans.map(s => [s.attributes["edgehome.region"], s.attributes["edgehome.node"]])).toEqual([
			["cn-east", cn.nodeID],
			["eu-central", eu.nodeID]
		]);
		for (const span of receiver.spans) {
			expect(span.resource).toMatchObject({ "service.name": "edgehome", "edgehome.regions": ["cn-east", "eu-central"], "edgehome.group": "all" });
			expect(span.resource).not.toHaveProperty("cloud.region");
			expect(span.resource).not.toHaveProperty("edgehome.region");
		}
	});

	it("marks an endpoint failure as an error and a domain answer as unset, by the error's type only", async () => {
		const broker = await ordersBroker();
		await expect(broker.call("orders.place", { email: "bo@example.com", fail: true })).rejects.toMatchObject({ type: "BUYER_NOT_FOUND" });
		await expect(broker.call("orders.place", { email: "cy@example.com", crash: true })).rejects.toThrow("database down");
		await within(() => receiver.spans.length === 2, 5000);
		const [refused, crashed] = receiver.spans;
		expect(refused).toMatchObject({ status: { code: "STATUS_CODE_UNSET" }, attributes: { "error.type": "BUYER_NOT_FOUND" } });
		expect(crashed).toMatchObject({ status: { code: "STATUS_CODE_ERROR", message: "Error" }, attributes: { "error.type": "Error" } });
		expect(JSON.stringify(receiver.spans)).not.toMatch(/example\.com|database down|no such buyer/);
	});

	it("samples whole traces by EDGEHOME_TRACE_SAMPLE_RATIO: 0 exports nothing, children follow their root", async () => {
		await retrace({ EDGEHOME_TRACE_SAMPLE_RATIO: "0" });
		const none = await ordersBroker();
		for (let i = 0; i < 20; i++) await none.call("orders.place", { email: "x@example.com" });
		await none.stop();
		await retrace({ EDGEHOME_TRACE_SAMPLE_RATIO: "0.5" });
		const half = await ordersBroker();
		for (let i = 0; i < 200; i++) await half.call("orders.place", { email: "x@example.com" });
		await half.stop();
		brokers.length = 0;
		const roots = receiver.spans.filter(s => s.name === "orders/place");
		expect(receiver.spans.every(s => s.attributes["edgehome.node"] === half.nodeID)).toBe(true);
		expect(roots.length).toBeGreaterThan(60);
		expect(roots.length).toBeLessThan(140);
		// Every kept root has its child, and no child is kept without its root.
		const rootIds = new Set(roots.map(r => r.spanId));
		const children = receiver.spans.filter(s => s.name === "orders/price");
		expect(children.length).toBe(roots.length);
		expect(children.every(c => rootIds.has(c.parentSpanId))).toBe(true);
	});

	it("sends what is still waiting when a broker stops, though the process's tracing goes on", async () => {
		await retrace({ EDGEHOME_TRACE_EXPORT_DELAY_MS: "60000" });
		const broker = await ordersBroker();
		await broker.call("orders.place", { email: "x@example.com" });
		expect(receiver.spans).toHaveLength(0);
		await broker.stop();
		brokers.length = 0;
		expect(receiver.spans).toHaveLength(2);
		expect(runningProcessTracing()).toBe(tracing);
	});

	it("stops a broker whose last spans cannot be sent, within the export timeout and to the end of its stop", async () => {
		await tracing?.stop();
		const unreachable = { EDGEHOME_OTLP_URL: "http://127.0.0.1:1/v1/traces", EDGEHOME_OTLP_TIMEOUT_MS: "200", EDGEHOME_TRACE_EXPORT_DELAY_MS: "60000" };
		tracing = startProcessTracing(unreachable, { regions: ["cn-east"], group: "test" });
		let stopped = false;
		const broker = tracedBroker("cn-east", "unsent", { stopped: () => void (stopped = true) });
		broker.createService({ name: "sums", actions: { one: () => 1 } });
		await broker.start();
		await broker.call("sums.one");
		const started = Date.now();
		await broker.stop();
		expect(Date.now() - started).toBeLessThan(1500);
		// Moleculer runs what follows the tracer's stop (the registry's, the `stopped` hooks) only if that stop resolved.
		expect(stopped).toBe(true);
	});

	it("sends what is still waiting when the process's tracing stops", async () => {
		await retrace({ EDGEHOME_TRACE_EXPORT_DELAY_MS: "60000" });
		const broker = await ordersBroker();
		await broker.call("orders.place", { email: "x@example.com" });
		await tracing!.stop();
		expect(receiver.spans).toHaveLength(2);
		expect(runningProcessTracing()).toBeUndefined();
	});
});

describe("the collector URL, sampling and the one SDK per process", () => {
	const origin = { region: "cn-east", nodeID: "n1" };
	const host = { regions: ["cn-east"], group: "all" };

	it("turns tracing off without a URL, and takes EDGEHOME_OTLP_URL, then OTel's own variables", () => {
		expect(startProcessTracing({}, host)).toBeUndefined();
		expect(brokerTracing({}, origin)).toEqual({ enabled: false });
		expect(otlpCollector({ EDGEHOME_OTLP_URL: "http://a:4318/v1/traces", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://b:4318/v1/traces" })).toEqual({
			variable: "EDGEHOME_OTLP_URL",
			url: "http://a:4318/v1/traces"
		});
		expect(otlpCollector({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://b:4318/v1/traces" })?.url).toBe("http://b:4318/v1/traces");
		expect(otlpCollector({ OTEL_EXPORTER_OTLP_ENDPOINT: "https://c:4318/" })?.url).toBe("https://c:4318/v1/traces");
	});

	it("refuses a URL that is not http(s) and a ratio outside 0..1, naming the variable, and leaves nothing running", () => {
		expect(() => otlpCollector({ EDGEHOME_OTLP_URL: "collector:4318" })).toThrow(EnvError);
		expect(() => otlpCollector({ EDGEHOME_OTLP_URL: "ftp://c/v1/traces" })).toThrow(/EDGEHOME_OTLP_URL="ftp:\/\/c\/v1\/traces"/);
		expect(() => startProcessTracing({ EDGEHOME_OTLP_URL: "http://c:4318/v1/traces", EDGEHOME_TRACE_SAMPLE_RATIO: "2" }, host)).toThrow(
			/EDGEHOME_TRACE_SAMPLE_RATIO="2": expected a number in 0..1/
		);
		expect(runningProcessTracing()).toBeUndefined();
	});

	it("refuses a traced broker in a process whose tracing was not started, rather than drop its spans", () => {
		expect(() => brokerTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" }, origin)).toThrow(
			/OTEL_EXPORTER_OTLP_ENDPOINT="http:\/\/c:4318\/v1\/traces": expected .*startProcessTracing/
		);
	});

	it("refuses a collector URL while OTEL_SDK_DISABLED keeps the SDK from registering, and leaves nothing running", () => {
		process.env.OTEL_SDK_DISABLED = "true";
		try {
			expect(() => startProcessTracing({ EDGEHOME_OTLP_URL: receiver.url }, host)).toThrow(/OTEL_SDK_DISABLED="true": expected unset while EDGEHOME_OTLP_URL/);
		} finally {
			delete process.env.OTEL_SDK_DISABLED;
		}
		expect(runningProcessTracing()).toBeUndefined();
	});

	it("runs one SDK per process: a second start is refused while the first runs, and allowed once it stopped", async () => {
		const env = { EDGEHOME_OTLP_URL: receiver.url };
		const first = startProcessTracing(env, host)!;
		expect(() => startProcessTracing(env, host)).toThrow(/already running/);
		// Every broker of the process feeds the one SDK, whatever its own environment says.
		expect(brokerTracing({}, origin)).toMatchObject({ enabled: true });
		await first.stop();
		expect(brokerTracing({}, origin)).toEqual({ enabled: false });
		tracing = startProcessTracing(env, host);
		expect(runningProcessTracing()).toBe(tracing);
	});
});
