import { createHash } from "node:crypto";

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ALL_ZERO = /^0+$/;

/**
 * Moleculer's ids as W3C / OTel ids. A trace is named by its request id: the gateway's is
 * already 32 hex digits (or the trace id of an incoming `traceparent`); a call started elsewhere
 * has a UUID (its dashes dropped); a client's own X-Request-Id is hashed. Every node maps the
 * same request id to the same trace id, so a trace stays one across processes and regions.
 */
export function traceIdOf(requestID: string): string {
	if (HEX32.test(requestID) && !ALL_ZERO.test(requestID)) return requestID;
	if (UUID.test(requestID)) return requestID.replaceAll("-", "");
	return digest(requestID, 32);
}

/** A span id (16 hex digits) for a Moleculer span or context id: the first 64 bits of a UUID, a 16-hex id as it is. */
export function spanIdOf(id: string): string {
	if (HEX16.test(id) && !ALL_ZERO.test(id)) return id;
	if (UUID.test(id)) return `${id.slice(0, 8)}${id.slice(9, 13)}${id.slice(14, 18)}`;
	return digest(id, 16);
}

function digest(value: string, length: number): string {
	const hex = createHash("sha256").update(value).digest("hex").slice(0, length);
	// An all-zero id is invalid in W3C trace context: one more bit keeps it a valid, stable id.
	return ALL_ZERO.test(hex) ? `${hex.slice(0, -1)}1` : hex;
}

/** The W3C `traceparent` naming a span. */
export function traceparentOf(span: { traceID: string; id: string; sampled: boolean }): string {
	return `00-${traceIdOf(span.traceID)}-${spanIdOf(span.id)}-${span.sampled ? "01" : "00"}`;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** A well-formed W3C `traceparent` (version 00), or undefined. */
export function parseTraceparent(value: string | undefined): { traceId: string; parentId: string; sampled: boolean } | undefined {
	const m = value === undefined ? null : TRACEPARENT.exec(value.trim().toLowerCase());
	if (!m || ALL_ZERO.test(m[1]!) || ALL_ZERO.test(m[2]!)) return undefined;
	return { traceId: m[1]!, parentId: m[2]!, sampled: (Number.parseInt(m[3]!, 16) & 1) === 1 };
}
