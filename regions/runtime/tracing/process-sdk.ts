import type { Attributes, Tracer } from "@opentelemetry/api";
import { context, diag, ProxyTracerProvider, propagation, trace } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { defaultResource, resourceFromAttributes, serviceInstanceIdDetector } from "@opentelemetry/resources";
import { NodeSDK } from "@opentelemetry/sdk-node";
import { BatchSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import type { Env } from "../env.ts";
import { EnvError, envFloat, envInt } from "../env.ts";
import { otlpCollector } from "./collector.ts";
import { TraceSampler } from "./sampler.ts";
import { StagedIds } from "./staged-ids.ts";

/** What a process runs: its regions (one in every deployed process, all of them in `npm start`) and its service group. */
export interface TracingHost {
	regions: string[];
	group: string;
}

/** The process's OTel SDK while it runs: what the brokers' exporters (exporter.ts) feed their finished spans through. */
export interface ProcessTracing {
	/** The SDK's tracer, through the global API. */
	readonly tracer: Tracer;
	/** The ids the SDK gives the span it is about to start. */
	readonly ids: StagedIds;
	/** The sampling of the process (EDGEHOME_TRACE_SAMPLE_RATIO): the SDK's, and Moleculer's decision where a trace starts. */
	readonly sampler: TraceSampler;
	/** Sends the finished spans still waiting, bounded by the export timeout. */
	flush(): Promise<void>;
	/**
	 * Flushes, shuts the SDK down and unregisters it from the global API, so that a later start registers again.
	 * An export that fails then is the SDK's to report (OTel's diagnostics, OTEL_LOG_LEVEL), as during the run.
	 */
	stop(): Promise<void>;
}

let running: ProcessTracing | undefined;

/** The process's tracing, once its composition root started it. */
export function runningProcessTracing(): ProcessTracing | undefined {
	return running;
}

/**
 * Starts the process's one NodeSDK, before any broker is built: traces only (no logs, metrics or
 * instrumentations), sampled by EDGEHOME_TRACE_SAMPLE_RATIO (parent-based) and exported by
 * OTLP/HTTP protobuf. Undefined without a collector URL: then no broker traces. Its resource says
 * where the process runs; it names the region only when the process hosts one, as every deployed
 * process does (each span names its own region and node: several regions may share a process).
 */
export function startProcessTracing(env: Env, host: TracingHost): ProcessTracing | undefined {
	const collector = otlpCollector(env);
	if (!collector) return undefined;
	if (running) throw new Error("process tracing is already running: startProcessTracing is called once per process, by its composition root");
	const sampler = new TraceSampler(envFloat(env, "EDGEHOME_TRACE_SAMPLE_RATIO", 1, 0, 1));
	const exporter = new OTLPTraceExporter({ url: collector.url, timeoutMillis: envInt(env, "EDGEHOME_OTLP_TIMEOUT_MS", 5000, 100, 60_000) });
	const processor = new BatchSpanProcessor({
		exporter,
		// Longest wait before finished spans are sent; spans held (past it new ones are dropped, the node never waits); spans per request.
		scheduledDelayMillis: envInt(env, "EDGEHOME_TRACE_EXPORT_DELAY_MS", 2000, 10, 60_000),
		maxQueueSize: envInt(env, "EDGEHOME_TRACE_QUEUE_MAX", 2048, 1),
		maxExportBatchSize: envInt(env, "EDGEHOME_TRACE_BATCH_MAX", 512, 1)
	});
	const ids = new StagedIds();
	const sdk = new NodeSDK({
		resource: defaultResource().merge(resourceFromAttributes(processResource(host))),
		// A random service.instance.id only: the host and process detectors would export the command line and the user's name.
		resourceDetectors: [serviceInstanceIdDetector],
		sampler: sampler.sdk,
		idGenerator: ids,
		spanLimits: { attributeValueLengthLimit: envInt(env, "EDGEHOME_TRACE_ATTRIBUTE_MAX", 1024, 16) },
		spanProcessors: [processor],
		// Empty, not absent: absent, NodeSDK would build log and metric exporters from OTEL_* variables.
		logRecordProcessors: [],
		metricReaders: [],
		instrumentations: []
	});
	sdk.start();
	const registered = trace.getTracerProvider();
	const provider = registered instanceof ProxyTracerProvider ? registered.getDelegate() : registered;
	if (!(provider instanceof TracerProvider)) {
		unregister();
		throw new EnvError(
			"OTEL_SDK_DISABLED",
			process.env.OTEL_SDK_DISABLED ?? "",
			`unset while ${collector.variable} names a collector: the SDK registered no tracer provider`
		);
	}
	const handle: ProcessTracing = {
		tracer: trace.getTracer("edgehome"),
		ids,
		sampler,
		// The provider rejects with the failure of each of its processors: one here.
		flush: () =>
			provider.forceFlush().catch((failures: Error[]) => {
				throw new Error(failures.map(f => f.message).join("; "));
			}),
		async stop() {
			if (running !== handle) return;
			running = undefined;
			await sdk.shutdown().catch(err => diag.warn(`spans not sent on shutdown: ${(err as Error).message}`));
			unregister();
		}
	};
	running = handle;
	return handle;
}

function processResource({ regions, group }: TracingHost): Attributes {
	const where = regions.length === 1 ? { "cloud.region": regions[0]!, "edgehome.region": regions[0]! } : { "edgehome.regions": regions };
	return { "service.name": "edgehome", "service.namespace": "edgehome", "edgehome.group": group, ...where };
}

/** NodeSDK's shutdown leaves its tracer provider, context manager and propagator registered. */
function unregister(): void {
	trace.disable();
	context.disable();
	propagation.disable();
}
