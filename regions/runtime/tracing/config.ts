import type { BrokerOptions } from "moleculer";
import type { Env } from "../env.ts";
import { EnvError } from "../env.ts";
import { otlpCollector } from "./collector.ts";
import type { SpanOrigin } from "./exporter.ts";
import { OtelTraceExporter } from "./exporter.ts";
import { runningProcessTracing } from "./process-sdk.ts";

/**
 * The broker's tracing options: on while the process's tracing runs (process-sdk.ts, started by the
 * composition root before its brokers), else off (Moleculer makes no span). Action spans are made by
 * ActionSpans (action-spans.ts, among the broker's middlewares), not by Moleculer's own middleware,
 * which would make one for every call of an unsampled trace too.
 */
export function brokerTracing(env: Env, origin: SpanOrigin): BrokerOptions["tracing"] {
	const tracing = runningProcessTracing();
	if (!tracing) {
		const collector = otlpCollector(env);
		// A collector named but no SDK to send to: tracing is never dropped in silence.
		if (collector)
			throw new EnvError(collector.variable, collector.url, "a process whose composition root called startProcessTracing before building its brokers");
		return { enabled: false };
	}
	const exporter = new OtelTraceExporter(tracing, origin);
	return {
		enabled: true,
		// Moleculer accepts an exporter instance; its typings only list the built-in names.
		exporter: [exporter] as unknown as NonNullable<Exclude<BrokerOptions["tracing"], boolean | undefined>["exporter"]>,
		actions: false,
		events: false,
		// Error messages and data may name a user: a span keeps the error's type only.
		errorFields: ["name", "type", "code"],
		stackTrace: false
	};
}
