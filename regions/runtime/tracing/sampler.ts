import { ROOT_CONTEXT, SpanKind } from "@opentelemetry/api";
import type { Sampler } from "@opentelemetry/sdk-trace";
import { ParentBasedSampler, SamplingDecision, TraceIdRatioBasedSampler } from "@opentelemetry/sdk-trace";
import type { Span, Tracer } from "moleculer";

/**
 * Parent-based ratio sampling, decided once per trace where it starts: a call, a message or an
 * HTTP request that carries a sampled or unsampled parent follows it; a new trace is kept when
 * its trace id falls within the ratio. The decision is the OTel SDK's own sampler's, given the
 * trace id: every node reaches the same one for the same trace, and the SDK, handed the spans
 * Moleculer kept, agrees with it.
 */
export class TraceSampler {
	readonly sdk: Sampler;
	private readonly root: Sampler;

	constructor(ratio: number) {
		this.root = new TraceIdRatioBasedSampler(ratio);
		this.sdk = new ParentBasedSampler({ root: this.root });
	}

	/** Whether a trace started here, with this (OTel) trace id, is kept. */
	sampleRoot(traceId: string): boolean {
		return this.root.shouldSample(ROOT_CONTEXT, traceId, "", SpanKind.INTERNAL, {}, []).decision === SamplingDecision.RECORD_AND_SAMPLED;
	}
}

/**
 * Whether a trace that starts here, under this (Moleculer) trace id, is sampled: the tracer's own
 * decision (the exporter hands it `sampleRoot`), taken before any span exists, so that a trace
 * that is not kept never makes one.
 */
export function sampledRoot(tracer: Tracer, traceID: string): boolean {
	// Moleculer's hook takes a span; the decision reads only its trace id.
	return tracer.shouldSample({ traceID } as Span);
}
