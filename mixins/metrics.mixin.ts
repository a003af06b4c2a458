import type { Context, Service, ServiceSchema } from "moleculer";
import { METRIC, STORED_METRICS } from "../regions/runtime/metric-names.ts";
import { registerMetric } from "../regions/runtime/ops-metrics.ts";
import type { BusinessMetric } from "./metrics/business.ts";
import { BusinessMetrics } from "./metrics/business.ts";

export type { BusinessMetric } from "./metrics/business.ts";
export { BusinessMetrics, declareMetrics } from "./metrics/business.ts";

export const ACTION_METRIC = { calls: METRIC.actionCalls, errors: METRIC.actionErrors, duration: METRIC.actionDuration } as const;
const ACTION_METRICS = Object.values(ACTION_METRIC);

/** Where a call came from: this region, or another one whose router forwarded it here (regions/home-router.ts). */
function originOf(ctx: Context, region: string | undefined): "local" | "forwarded" {
	const from = (ctx.meta as { $home?: { originRegion?: string } } | undefined)?.$home?.originRegion;
	return from !== undefined && from !== region ? "forwarded" : "local";
}

type Started = { [STARTED]?: bigint };
const STARTED = Symbol("action started");

/**
 * RED metrics for every action of the service: calls, errors by code and a duration histogram,
 * labelled with `origin` (local, or forwarded from another region) besides the region every
 * sample carries (regions/runtime/ops-reporter.ts). `business` declares the service's own
 * metrics (metrics/business.ts), reachable as `this.businessMetrics` with their labels type-checked.
 * Opt-in per service: which actions a request calls can tell things apart (a known login from an
 * unknown one), so the identity services do not take it.
 */
export function metricsMixin<D extends Record<string, BusinessMetric>>(opts: { business?: D } = {}): Partial<ServiceSchema> {
	return {
		hooks: {
			before: {
				"*"(ctx: Context) {
					(ctx.locals as Started)[STARTED] = process.hrtime.bigint();
				}
			},
			after: {
				"*"(this: Service, ctx: Context, res: unknown) {
					observe(this, ctx);
					return res;
				}
			},
			error: {
				"*"(this: Service, ctx: Context, err: Error & { type?: string; code?: number }) {
					observe(this, ctx, err.type ?? (typeof err.code === "number" ? String(err.code) : err.name));
					throw err;
				}
			}
		},
		created(this: Service & { businessMetrics?: BusinessMetrics<D> }) {
			this.businessMetrics = new BusinessMetrics(this.broker, opts.business ?? ({} as D));
			// A region node registers the catalogue at start (regions/runtime/ops-metrics.ts); another broker (a test's) here.
			if (!this.broker.isMetricsEnabled()) return;
			for (const def of STORED_METRICS.filter(d => (ACTION_METRICS as readonly string[]).includes(d.name)))
				if (!this.broker.metrics.getMetric(def.name)) registerMetric(this.broker.metrics, def);
		}
	};
}

function observe(service: Service, ctx: Context, code?: string): void {
	const started = (ctx.locals as Started)[STARTED];
	if (!service.broker.isMetricsEnabled() || started === undefined || !ctx.action) return;
	const labels = {
		service: service.fullName,
		action: (ctx.action as { rawName?: string }).rawName ?? ctx.action.name ?? "",
		origin: originOf(ctx, (service.broker.metadata as { region?: string }).region)
	};
	const registry = service.broker.metrics;
	registry.increment(ACTION_METRIC.calls, labels);
	registry.observe(ACTION_METRIC.duration, Number(process.hrtime.bigint() - started) / 1e9, labels);
	if (code !== undefined) registry.increment(ACTION_METRIC.errors, { ...labels, code });
}
