import type { Context, ServiceBroker } from "moleculer";
import { Errors } from "moleculer";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { EnvError } from "../../../../../regions/runtime/env.ts";
import { brokerTracing, otlpTracesUrl } from "../../../../../regions/runtime/tracing/config.ts";
import type { OtlpReceiver } from "../../../../harness/otlp-receiver.ts";
import { startOtlpReceiver } from "../../../../harness/otlp-receiver.ts";
import { within } from "../../../../harness/waiting.ts";
import { tracedBroker } from "./traced-broker.ts";

let receiver: OtlpReceiver;
const brokers: ServiceBroker[] = [];

beforeAll(async () => {
	receiver = await startOtlpReceiver();
});
afterAll(() => receiver.stop());
afterEach(async () => {
	await Promise.all(brokers.splice(0).map(b => b.stop()));
	receiver.spans.length = 0;
});

/** A broker of region `region` exporting to the receiver, with an `orders` service: `place` calls `price` and fails on demand. */
async function ordersBroker(env: Record<string, string>, region = "cn-east"): Promise<ServiceBroker> {
	const broker = tracedBroker(receiver, region, `${region}-test-${brokers.length}`, env);
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
	it("exports each action as an OTLP protobuf span with Moleculer's ids, parent, times and the node's resource", async () => {
		const broker = await ordersBroker({});
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
		expect(place.attributes).toMatchObject({ "rpc.system": "moleculer", "rpc.service": "orders", "rpc.method": "place" });
		expect(place.startMs).toBeGreaterThanOrEqual(before - 1);
		expect(place.endMs).toBeGreaterThanOrEqual(price.endMs);
		expect(place.resource).toMatchObject({
			"service.name": "edgehome",
			"service.instance.id": broker.nodeID,
			"cloud.region": "cn-east",
			"edgehome.region": "cn-east",
			"telemetry.sdk.language": "nodejs"
		});
		// Params (an e-mail here) never become attributes.
		expect(JSON.stringify(receiver.spans)).not.toContain("ann@example.com");
	});

	it("marks an endpoint failure as an error and a domain answer as unset, by the error's type only", async () => {
		const broker = await ordersBroker({});
		await expect(broker.call("orders.place", { email: "bo@example.com", fail: true })).rejects.toMatchObject({ type: "BUYER_NOT_FOUND" });
		await expect(broker.call("orders.place", { email: "cy@example.com", crash: true })).rejects.toThrow("database down");
		await within(() => receiver.spans.length === 2, 5000);
		const [refused, crashed] = receiver.spans;
		expect(refused).toMatchObject({ status: { code: "STATUS_CODE_UNSET" }, attributes: { "error.type": "BUYER_NOT_FOUND" } });
		expect(crashed).toMatchObject({ status: { code: "STATUS_CODE_ERROR", message: "Error" }, attributes: { "error.type": "Error" } });
		expect(JSON.stringify(receiver.spans)).not.toMatch(/example\.com|database down|no such buyer/);
	});

	it("samples whole traces by EDGEHOME_TRACE_SAMPLE_RATIO: 0 exports nothing, children follow their root", async () => {
		const none = await ordersBroker({ EDGEHOME_TRACE_SAMPLE_RATIO: "0" });
		for (let i = 0; i < 20; i++) await none.call("orders.place", { email: "x@example.com" });
		const half = await ordersBroker({ EDGEHOME_TRACE_SAMPLE_RATIO: "0.5" });
		for (let i = 0; i < 200; i++) await half.call("orders.place", { email: "x@example.com" });
		await new Promise(r => setTimeout(r, 300));
		await none.stop();
		await half.stop();
		brokers.length = 0;
		const roots = receiver.spans.filter(s => s.name === "orders/place");
		expect(receiver.spans.every(s => s.resource["service.instance.id"] === half.nodeID)).toBe(true);
		expect(roots.length).toBeGreaterThan(60);
		expect(roots.length).toBeLessThan(140);
		// Every kept root has its child, and no child is kept without its root.
		const rootIds = new Set(roots.map(r => r.spanId));
		const children = receiver.spans.filter(s => s.name === "orders/price");
		expect(children.length).toBe(roots.length);
		expect(children.every(c => rootIds.has(c.parentSpanId))).toBe(true);
	});

	it("sends what is still waiting when the broker stops", async () => {
		const broker = await ordersBroker({ EDGEHOME_TRACE_EXPORT_DELAY_MS: "60000" });
		await broker.call("orders.place", { email: "x@example.com" });
		expect(receiver.spans).toHaveLength(0);
		await broker.stop();
		brokers.length = 0;
		expect(receiver.spans).toHaveLength(2);
	});
});

describe("the collector URL and sampling from the environment", () => {
	it("turns tracing off without a URL, and takes EDGEHOME_OTLP_URL, then OTel's own variables", () => {
		const origin = { region: "cn-east", group: "all", nodeID: "n1" };
		expect(brokerTracing({}, origin)).toEqual({ enabled: false });
		expect(otlpTracesUrl({ EDGEHOME_OTLP_URL: "http://a:4318/v1/traces", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://b:4318/v1/traces" })).toBe(
			"http://a:4318/v1/traces"
		);
		expect(otlpTracesUrl({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://b:4318/v1/traces" })).toBe("http://b:4318/v1/traces");
		expect(otlpTracesUrl({ OTEL_EXPORTER_OTLP_ENDPOINT: "https://c:4318/" })).toBe("https://c:4318/v1/traces");
	});

	it("refuses a URL that is not http(s) and a ratio outside 0..1, naming the variable", () => {
		const origin = { region: "cn-east", group: "all", nodeID: "n1" };
		expect(() => otlpTracesUrl({ EDGEHOME_OTLP_URL: "collector:4318" })).toThrow(EnvError);
		expect(() => otlpTracesUrl({ EDGEHOME_OTLP_URL: "ftp://c/v1/traces" })).toThrow(/EDGEHOME_OTLP_URL="ftp:\/\/c\/v1\/traces"/);
		expect(() => brokerTracing({ EDGEHOME_OTLP_URL: "http://c:4318/v1/traces", EDGEHOME_TRACE_SAMPLE_RATIO: "2" }, origin)).toThrow(
			/EDGEHOME_TRACE_SAMPLE_RATIO="2": expected a number in 0..1/
		);
	});
});
