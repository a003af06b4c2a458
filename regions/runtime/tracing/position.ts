import type { Context, Span } from "moleculer";

/**
 * Where a handler stands in its trace: the id of its span, its trace and the sampling decision.
 * A sampled trace's handler has a Moleculer span; an unsampled one has only these ids, which its
 * calls, messages and log lines carry on, as W3C trace context asks, at no further cost.
 */
export type TracePosition = Pick<Span, "id" | "traceID" | "sampled">;

/**
 * The position of a context: its span, else (tracing on, the trace's decision taken) its own id,
 * the id Moleculer gives its span when there is one and names as the parent of its calls.
 */
export function tracePositionOf(ctx: Context): TracePosition | undefined {
	const span = ctx.span as Span | null;
	if (span) return span;
	if (typeof ctx.tracing !== "boolean" || !ctx.broker.isTracingEnabled()) return undefined;
	return { id: ctx.id, traceID: ctx.requestID ?? ctx.id, sampled: ctx.tracing };
}
