import type { BrokerOptions } from "moleculer";
import type { Env } from "../env.ts";
import { EnvError, envFloat, envInt } from "../env.ts";
import { OtelTraceExporter } from "./exporter.ts";
import { TraceSampler } from "./sampler.ts";

/**
 * Where traces go: EDGEHOME_OTLP_URL, else OTel's own OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else
 * OTEL_EXPORTER_OTLP_ENDPOINT with `/v1/traces`. None set: no tracing at all (no spans made).
 */
export function otlpTracesUrl(env: Env): string | undefined {
	const named = (["EDGEHOME_OTLP_URL", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] as const).find(name => env[name]);
	const base = env.OTEL_EXPORTER_OTLP_ENDPOINT;
	const [name, raw] = named ? [named, env[named]!] : base ? ["OTEL_EXPORTER_OTLP_ENDPOINT", `${base.replace(/\/+$/, "")}/v1/traces`] : [];
	if (!name || !raw) return undefined;
	let url: URL;
	try {
		url = new URL(raw);
	} catch {
		throw new EnvError(name, raw, "an http:// or https:// URL of an OTLP/HTTP collector");
	}
	if (url.protocol !== "http:" && url.protocol !== "https:") throw new EnvError(name, raw, "an http:// or https:// URL of an OTLP/HTTP collector");
	return url.toString();
}

/** Where a node's spans say they ran. */
export interface TraceOrigin {
	region: string;
	group: string;
	nodeID: string;
}

/**
 * The broker's tracing options: off (Moleculer makes no span) without a collector URL; else traces
 * sampled by EDGEHOME_TRACE_SAMPLE_RATIO (parent-based) and exported by OTLP/HTTP protobuf. Action
 * spans are made by ActionSpans (action-spans.ts, among the broker's middlewares), not by Moleculer's
 * own middleware, which would make one for every call of an unsampled trace too.
 */
export function brokerTracing(env: Env, origin: TraceOrigin): BrokerOptions["tracing"] {
	const url = otlpTracesUrl(env);
	if (!url) return { enabled: false };
	const exporter = new OtelTraceExporter({
		url,
		sampler: new TraceSampler(envFloat(env, "EDGEHOME_TRACE_SAMPLE_RATIO", 1, 0, 1)),
		resource: {
			"service.name": "edgehome",
			"service.namespace": "edgehome",
			"service.instance.id": origin.nodeID,
			"cloud.region": origin.region,
			"edgehome.region": origin.region,
			"edgehome.group": origin.group
		},
		exportDelayMs: envInt(env, "EDGEHOME_TRACE_EXPORT_DELAY_MS", 2000, 10, 60_000),
		queueMax: envInt(env, "EDGEHOME_TRACE_QUEUE_MAX", 2048, 1),
		batchMax: envInt(env, "EDGEHOME_TRACE_BATCH_MAX", 512, 1),
		timeoutMs: envInt(env, "EDGEHOME_OTLP_TIMEOUT_MS", 5000, 100, 60_000),
		attributeMax: envInt(env, "EDGEHOME_TRACE_ATTRIBUTE_MAX", 1024, 16)
	});
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
