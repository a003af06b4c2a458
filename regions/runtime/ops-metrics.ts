import type { IncomingMessage, ServerResponse } from "node:http";
import type { MetricRegistry, Middleware, ServiceBroker } from "moleculer";
import { isEndpointFailure } from "../errors.ts";
import type { MetricShape } from "./metric-names.ts";
import { METRIC, STORED_METRICS } from "./metric-names.ts";

interface ActionDef {
	rawName?: string;
	service?: { name: string; fullName: string; metadata?: { $category?: string } };
}

interface RoutedRequest extends IncomingMessage {
	$alias?: { method: string; fullPath?: string; path?: string };
}

/**
 * Per-request metrics are taken at the edge: each HTTP request by its gateway, route template and
 * status, what the client itself sees. Calls inside the cluster are counted by action and error
 * code only in the services that take the metrics mixin (mixins/metrics.mixin.ts), never in the
 * identity services (which calls a request makes tells a known login from an unknown one); here
 * only endpoint failures (timeouts, unexpected errors) are, by service.
 */
export const OpsMetricsMiddleware: Middleware = {
	name: "OpsMetrics",

	created(broker: ServiceBroker) {
		if (broker.isMetricsEnabled()) registerMetrics(broker.metrics);
	},

	serviceCreated(this: ServiceBroker, service: { fullName: string }) {
		if (this.isMetricsEnabled() && !service.fullName.startsWith("$")) this.metrics.increment(METRIC.endpointFailures, { service: service.fullName }, 0);
	},

	localAction(this: ServiceBroker, next: (ctx: any) => Promise<unknown>, action: ActionDef) {
		if (!this.isMetricsEnabled() || !action.service) return next;
		const service = action.service;
		if (service.metadata?.$category === "gateway" && action.rawName === "rest") {
			return (ctx: { params: { req: RoutedRequest; res: ServerResponse } }) => {
				const started = process.hrtime.bigint();
				const { req, res } = ctx.params;
				res.once("close", () => {
					const alias = req.$alias;
					const route = alias ? `${alias.method === "*" ? req.method : alias.method} ${alias.fullPath ?? alias.path}` : "unmatched";
					this.metrics.increment(METRIC.httpRequests, { gateway: service.name, route, code: String(res.statusCode) });
					this.metrics.observe(METRIC.httpDuration, Number(process.hrtime.bigint() - started) / 1e9, { gateway: service.name, route });
				});
				return next(ctx);
			};
		}
		const labels = { service: service.fullName };
		return (ctx: unknown) =>
			next(ctx).catch((err: unknown) => {
				if (isEndpointFailure(err)) this.metrics.increment(METRIC.endpointFailures, labels);
				throw err;
			});
	}
} as Middleware;

/** One metric of the catalogue on `registry`, with its real buckets and no rate or quantiles. */
export function registerMetric(registry: MetricRegistry, def: MetricShape): void {
	registry.register({
		type: def.type,
		name: def.name,
		description: def.help,
		labelNames: def.labelNames ?? [],
		...(def.buckets ? { buckets: def.buckets, quantiles: false } : {}),
		rate: false
	} as never);
}

/** Every stored metric of the catalogue, before anything counts: counters start at 0. */
function registerMetrics(registry: MetricRegistry): void {
	for (const def of STORED_METRICS) {
		registerMetric(registry, def);
		if (def.type === "counter" && !def.labelNames?.length) registry.increment(def.name, undefined, 0);
		for (const value of def.seeded?.values ?? []) registry.increment(def.name, { [def.seeded!.label]: value }, 0);
	}
}
