import type { Attributes } from "@opentelemetry/api";
import { ROOT_CONTEXT, TraceFlags, trace } from "@opentelemetry/api";
import type { Span, Tracer } from "moleculer";
import { TracerExporters } from "moleculer";
import { spanIdOf, traceIdOf } from "./ids.ts";
import { withoutPersonal } from "./pii.ts";
import type { ProcessTracing } from "./process-sdk.ts";
import { otelShape } from "./semantics.ts";

/** Where a broker's spans ran: several brokers (regions) may share a process, and its resource. */
export interface SpanOrigin {
	region: string;
	nodeID: string;
}

/**
 * Moleculer's tracer feeding the OTel SDK: each finished span Moleculer kept becomes an OTel span
 * with the same ids, times, parent and sampling, its name, kind, attributes and status by the
 * semantic conventions (semantics.ts), and the region and node it ran on; it goes out through the
 * process's SDK (process-sdk.ts), which every broker of the process shares.
 */
export class OtelTraceExporter extends TracerExporters.Base {
	private readonly tracing: ProcessTracing;
	private readonly where: Attributes;

	constructor(tracing: ProcessTracing, origin: SpanOrigin) {
		super({});
		this.tracing = tracing;
		this.where = { "edgehome.region": origin.region, "edgehome.node": origin.nodeID };
	}

	override init(tracer: Tracer): void {
		super.init(tracer);
		// Moleculer asks this only where a trace starts (no parent decision to follow): the SDK's ratio sampler decides.
		tracer.shouldSample = (span: Span) => this.tracing.sampler.sampleRoot(traceIdOf(span.traceID));
	}

	override spanFinished(span: Span): void {
		const shape = otelShape(span);
		const traceId = traceIdOf(span.traceID);
		const parent = span.parentID
			? trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId: spanIdOf(span.parentID), traceFlags: TraceFlags.SAMPLED, isRemote: shape.remoteParent })
			: ROOT_CONTEXT;
		this.tracing.ids.stage(traceId, spanIdOf(span.id));
		const otel = this.tracing.tracer.startSpan(
			shape.name,
			// Where it ran is the node's to say, not a service's.
			{ kind: shape.kind, attributes: withoutPersonal({ ...shape.attributes, ...this.where }), startTime: span.startTime ?? undefined },
			parent
		);
		otel.setStatus(shape.status);
		otel.end(span.finishTime ?? undefined);
	}

	/** Sends what is still waiting: a stopping node's last spans are not lost. The SDK is the process's, stopped by it. */
	override async stop(): Promise<void> {
		// Never rejects: Moleculer skips the rest of a broker's stop after a tracer stop that fails.
		await this.tracing.flush().catch(err => this.logger.warn(`spans of ${this.where["edgehome.node"]} not sent on stop: ${(err as Error).message}`));
	}
}
