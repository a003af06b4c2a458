import type { Attributes, Tracer as OtelTracer } from "@opentelemetry/api";
import { ROOT_CONTEXT, TraceFlags, trace } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { defaultResource, resourceFromAttributes } from "@opentelemetry/resources";
import type { IdGenerator } from "@opentelemetry/sdk-trace";
import { BatchSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import type { Span, Tracer } from "moleculer";
import { TracerExporters } from "moleculer";
import { spanIdOf, traceIdOf } from "./ids.ts";
import { withoutPersonal } from "./pii.ts";
import type { TraceSampler } from "./sampler.ts";
import { otelShape } from "./semantics.ts";

export interface OtlpExportSettings {
	/** OTLP/HTTP traces endpoint (protobuf), e.g. http://collector:4318/v1/traces. */
	url: string;
	sampler: TraceSampler;
	/** What the spans of this node say about where they ran (region, node, group). */
	resource: Attributes;
	/** Longest wait before finished spans are sent. */
	exportDelayMs: number;
	/** Spans waiting to be sent; past it new ones are dropped, never the node slowed. */
	queueMax: number;
	/** Spans per export request. */
	batchMax: number;
	/** Bound of one export request. */
	timeoutMs: number;
	/** Longest attribute value (a query's text, say). */
	attributeMax: number;
}

/**
 * Hands the ids of the span being converted to the SDK: a converted span keeps the ids Moleculer
 * gave it (and passed on to its children in other processes), not new ones. The SDK asks for them
 * synchronously inside `startSpan`, right after they are staged.
 */
class StagedIds implements IdGenerator {
	private traceId = "";
	private spanId = "";

	stage(traceId: string, spanId: string): void {
		this.traceId = traceId;
		this.spanId = spanId;
	}

	generateTraceId(): string {
		return this.traceId;
	}

	generateSpanId(): string {
		return this.spanId;
	}
}

/**
 * Moleculer's tracer feeding the OTel SDK: each finished span Moleculer kept becomes an OTel span
 * with the same ids, times, parent and sampling, its name, kind, attributes and status by the
 * semantic conventions (semantics.ts), and goes out through the SDK's batch processor and OTLP
 * protobuf exporter. One SDK tracer provider per broker, so each region's spans carry its own
 * resource even when several regions share a process.
 */
export class OtelTraceExporter extends TracerExporters.Base {
	private readonly settings: OtlpExportSettings;
	private readonly ids = new StagedIds();
	private provider: TracerProvider | undefined;
	private otel: OtelTracer | undefined;

	constructor(settings: OtlpExportSettings) {
		super({});
		this.settings = settings;
	}

	override init(tracer: Tracer): void {
		super.init(tracer);
		const s = this.settings;
		const exporter = new OTLPTraceExporter({ url: s.url, timeoutMillis: s.timeoutMs });
		this.provider = new TracerProvider({
			resource: defaultResource().merge(resourceFromAttributes(s.resource)),
			sampler: s.sampler.sdk,
			idGenerator: this.ids,
			spanLimits: { attributeValueLengthLimit: s.attributeMax },
			spanProcessors: [new BatchSpanProcessor({ exporter, scheduledDelayMillis: s.exportDelayMs, maxQueueSize: s.queueMax, maxExportBatchSize: s.batchMax })]
		});
		this.otel = this.provider.getTracer("edgehome");
		// Moleculer asks this only where a trace starts (no parent decision to follow): the SDK's ratio sampler decides.
		tracer.shouldSample = (span: Span) => s.sampler.sampleRoot(traceIdOf(span.traceID));
	}

	override spanFinished(span: Span): void {
		if (!this.otel) return;
		const shape = otelShape(span);
		const traceId = traceIdOf(span.traceID);
		const parent = span.parentID
			? trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId: spanIdOf(span.parentID), traceFlags: TraceFlags.SAMPLED, isRemote: shape.remoteParent })
			: ROOT_CONTEXT;
		this.ids.stage(traceId, spanIdOf(span.id));
		const otel = this.otel.startSpan(
			shape.name,
			{ kind: shape.kind, attributes: withoutPersonal(shape.attributes), startTime: span.startTime ?? undefined },
			parent
		);
		otel.setStatus(shape.status);
		otel.end(span.finishTime ?? undefined);
	}

	/** Sends what is still waiting (bounded by the export timeout): a stopping node's last spans are not lost. */
	override async stop(): Promise<void> {
		await this.provider?.shutdown();
		this.provider = undefined;
		this.otel = undefined;
	}
}
