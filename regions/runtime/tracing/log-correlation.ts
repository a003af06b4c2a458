import { currentTrace } from "../request-context.ts";
import { spanIdOf, traceIdOf } from "./ids.ts";

export interface TraceLogFields {
	trace_id: string;
	span_id: string;
	/** "01" when the trace is sampled (exported), "00" when it is not: its spans are then in no backend. */
	trace_flags: "00" | "01";
}

/**
 * The trace and span of the handler a log line is written in (OTel's log correlation field
 * names), so a line leads to its trace and a span to its lines. Nothing while tracing is off.
 */
export function traceLogFields(): TraceLogFields | undefined {
	const trace = currentTrace();
	if (!trace) return undefined;
	return { trace_id: traceIdOf(trace.traceID), span_id: spanIdOf(trace.id), trace_flags: trace.sampled ? "01" : "00" };
}
