import { randomFillSync } from "node:crypto";
import { parseTraceparent } from "../../regions/runtime/tracing/ids.ts";

const REQUEST_ID = /^[A-Za-z0-9._-]{8,64}$/;

export interface TraceContext {
	/** The request id every log line and downstream call carries (the trace id when there is one). */
	requestId: string;
	/** When the request continued a trace: the response's `traceparent`, the caller's trace with our span. */
	traceparent?: string;
	/** When the request continued a trace: the caller's span and sampling decision, and our span's id (the one `traceparent` names). */
	parent?: { parentId: string; sampled: boolean; spanId: string };
}

/**
 * 16 random bytes as hex, cut from a pool of 4096 ids drawn and hex-encoded at once: one request
 * to the OS and one encoding per 4096 requests instead of one per request (each was a measurable
 * share of a request).
 */
const pool = Buffer.alloc(16 * 4096);
let hex = "";
let offset = 0;
function randomId(): string {
	if (offset === hex.length) {
		hex = randomFillSync(pool).toString("hex");
		offset = 0;
	}
	offset += 32;
	return hex.slice(offset - 32, offset);
}

/**
 * Continues an incoming W3C `traceparent` (its trace id becomes the request id, our span is new),
 * else a well-formed incoming `X-Request-Id`, else starts a new trace. `traceparent` is a request
 * header: a response carries one only for a trace the caller started.
 */
export function traceContext(headers: Record<string, string | string[] | undefined>): TraceContext {
	const id = randomId();
	const parent = typeof headers.traceparent === "string" ? parseTraceparent(headers.traceparent) : undefined;
	if (parent) {
		const spanId = id.slice(16);
		return {
			requestId: parent.traceId,
			traceparent: `00-${parent.traceId}-${spanId}-${parent.sampled ? "01" : "00"}`,
			parent: { parentId: parent.parentId, sampled: parent.sampled, spanId }
		};
	}
	const given = headers["x-request-id"];
	// A new trace's id is the request id too, so one value finds the request in logs and traces.
	return { requestId: typeof given === "string" && REQUEST_ID.test(given) ? given : id };
}
