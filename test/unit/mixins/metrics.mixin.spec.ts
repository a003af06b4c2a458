import type { Context, ServiceSchema } from "moleculer";
import { Errors, ServiceBroker } from "moleculer";
import { afterEach, describe, expect, it } from "vitest";
import type { BusinessMetrics } from "../../../mixins/metrics.mixin.ts";
import { ACTION_METRIC, declareMetrics, metricsMixin } from "../../../mixins/metrics.mixin.ts";
import { OpsReporter } from "../../../regions/runtime/ops-reporter.ts";
import { freePort } from "../../harness/free-port.ts";

const business = declareMetrics({
	orders: { name: "edgehome_test_orders_total", type: "counter", help: "Orders placed", labelNames: ["outcome"] },
	queue: { name: "edgehome_test_queue_depth", type: "gauge", help: "Orders waiting" }
});

const shop: ServiceSchema = {
	name: "shop",
	mixins: [metricsMixin({ business })],
	actions: {
		order: {
			params: { $$strict: true, ok: "boolean" },
			handler(ctx: Context<{ ok: boolean }>) {
				const metrics = (this as unknown as { businessMetrics: BusinessMetrics<typeof business> }).businessMetrics;
				metrics.increment("orders", { outcome: ctx.params.ok ? "placed" : "refused" });
				metrics.set("queue", {}, 3);
				// @ts-expect-error: a label the metric does not declare
				if (false as boolean) metrics.increment("orders", { colour: "red" });
				// @ts-expect-error: a gauge is set, never incremented
				if (false as boolean) metrics.increment("queue", {});
				if (!ctx.params.ok) throw new Errors.MoleculerClientError("refused", 422, "ORDER_REFUSED");
				return { placed: true };
			}
		}
	}
};

let broker: ServiceBroker | undefined;
afterEach(() => broker?.stop());

const sampleOf = (b: ServiceBroker, name: string, labels: Record<string, string>) =>
	b.metrics.getMetric(name)?.get(labels) as { value?: number; count?: number } | null;

describe("the metrics mixin: RED metrics per action, and a service's own", () => {
	it("counts calls, errors by code and durations per action, telling forwarded calls from local ones", async () => {
		broker = new ServiceBroker({ logger: false, metadata: { region: "cn-east" }, metrics: { enabled: true, reporter: [] } });
		broker.createService(shop);
		await broker.start();
		await broker.call("shop.order", { ok: true });
		await broker.call("shop.order", { ok: true }, { meta: { $home: { originRegion: "eu-central", epoch: 1, hops: 1 } } });
		await expect(broker.call("shop.order", { ok: false })).rejects.toMatchObject({ type: "ORDER_REFUSED" });
		// Refused by validation before the action runs: the gateway's HTTP metrics count those.
		await expect(broker.call("shop.order", { ok: "yes" })).rejects.toMatchObject({ type: "VALIDATION_ERROR" });
		const local = { service: "shop", action: "order", origin: "local" };
		const forwarded = { ...local, origin: "forwarded" };
		expect(sampleOf(broker, ACTION_METRIC.calls, local)?.value).toBe(2);
		expect(sampleOf(broker, ACTION_METRIC.calls, forwarded)?.value).toBe(1);
		expect(sampleOf(broker, ACTION_METRIC.errors, { ...local, code: "ORDER_REFUSED" })?.value).toBe(1);
		expect(sampleOf(broker, ACTION_METRIC.duration, local)?.count).toBe(2);
		expect(sampleOf(broker, "edgehome_test_orders_total", { outcome: "placed" })?.value).toBe(2);
		expect(sampleOf(broker, "edgehome_test_orders_total", { outcome: "refused" })?.value).toBe(1);
		expect(sampleOf(broker, "edgehome_test_queue_depth", {})?.value).toBe(3);
	});

	it("is served by the ops port: the RED metrics with the catalogue's, the declared ones after them", async () => {
		const port = await freePort();
		const token = "ops-token-for-the-metrics-mixin-spec-0123456789";
		broker = new ServiceBroker({
			logger: false,
			metadata: { region: "cn-east" },
			metrics: { enabled: true, reporter: [new OpsReporter({ host: "127.0.0.1", port, token, labels: { region: "cn-east" } })] as never }
		});
		broker.createService(shop);
		await broker.start();
		await broker.call("shop.order", { ok: true });
		const text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
		expect(text).toContain('edgehome_action_calls_total{region="cn-east",service="shop",action="order",origin="local"} 1');
		expect(text).toContain('edgehome_action_duration_seconds_bucket{region="cn-east",service="shop",action="order",origin="local",le="+Inf"} 1');
		expect(text).toContain("# TYPE edgehome_test_orders_total counter");
		expect(text).toContain('edgehome_test_orders_total{region="cn-east",outcome="placed"} 1');
	});

	it("costs nothing and fails nothing on a node whose metrics are off", async () => {
		broker = new ServiceBroker({ logger: false, metrics: false });
		broker.createService(shop);
		await broker.start();
		expect(await broker.call("shop.order", { ok: true })).toEqual({ placed: true });
		await expect(broker.call("shop.order", { ok: false })).rejects.toMatchObject({ type: "ORDER_REFUSED" });
	});
});
