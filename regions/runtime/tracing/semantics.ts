import type { Attributes, SpanStatus } from "@opentelemetry/api";
import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import type { Span } from "moleculer";
import { isEndpointFailure } from "../../errors.ts";

/**
 * The kinds of span the runtime opens besides Moleculer's own action spans, each its OTel
 * kind: a gateway's request, the home routing of a call, the hop through a link to another
 * region, a SQL query, a channel message sent and handled.
 */
export const SPAN_TYPES = {
	http: SpanKind.SERVER,
	route: SpanKind.INTERNAL,
	link: SpanKind.CLIENT,
	db: SpanKind.CLIENT,
	publish: SpanKind.PRODUCER,
	consume: SpanKind.CONSUMER
} as const;

export type SpanType = keyof typeof SPAN_TYPES;

/** A finished Moleculer span as OTel sees it (semantic conventions for HTTP servers, RPC, databases and messaging). */
export interface OtelShape {
	name: string;
	kind: SpanKind;
	attributes: Attributes;
	status: SpanStatus;
	/** The parent ran in another process: the span continues a context that came over the wire. */
	remoteParent: boolean;
}

/** The runtime's spans keep their OTel attributes under this tag; nothing else of a span's tags is exported. */
export const OTEL_TAG = "otel";

export function otelShape(span: Span): OtelShape {
	const attributes: Attributes = { ...(span.tags[OTEL_TAG] as Attributes | undefined) };
	const error = span.error && span.error !== true ? (span.error as Error & { type?: string }) : undefined;
	if (span.error) attributes["error.type"] = error?.type ?? error?.name ?? "Error";
	if (span.type === "action") {
		const action = span.tags.action as { name?: string; rawName?: string } | undefined;
		const full = action?.name ?? span.name;
		const service = span.service?.fullName ?? full.slice(0, full.lastIndexOf("."));
		const method = action?.rawName ?? full.slice(full.lastIndexOf(".") + 1);
		Object.assign(attributes, { "rpc.system": "moleculer", "rpc.service": service, "rpc.method": method });
		const remote = span.tags.remoteCall === true;
		return { name: `${service}/${method}`, kind: remote ? SpanKind.SERVER : SpanKind.INTERNAL, attributes, status: statusOf(span.error), remoteParent: remote };
	}
	const kind = SPAN_TYPES[span.type as SpanType] ?? SpanKind.INTERNAL;
	// A failed query is an error, named by the database's code (database semantic conventions).
	if (span.type === "db" && error) {
		const code = (error as { code?: unknown }).code;
		const type = typeof code === "string" ? code : error.name;
		attributes["error.type"] = type;
		return { name: span.name, kind, attributes, status: { code: SpanStatusCode.ERROR, message: type }, remoteParent: false };
	}
	// An HTTP server span is an error for a 5xx only: a 4xx is the client's (HTTP semantic conventions).
	const status =
		span.type === "http"
			? Number(attributes["http.response.status_code"]) >= 500
				? { code: SpanStatusCode.ERROR }
				: { code: SpanStatusCode.UNSET }
			: statusOf(span.error);
	return { name: span.name, kind, attributes, status, remoteParent: kind === SpanKind.SERVER || kind === SpanKind.CONSUMER };
}

/** A domain answer (not found, refused, moving) leaves the status unset; an endpoint failure is an error, named by its type only (a message may name a user). */
function statusOf(error: Span["error"]): SpanStatus {
	if (!error) return { code: SpanStatusCode.UNSET };
	if (error !== true && !isEndpointFailure(error)) return { code: SpanStatusCode.UNSET };
	const type = error === true ? undefined : ((error as { type?: string }).type ?? (error as Error).name);
	return type ? { code: SpanStatusCode.ERROR, message: type } : { code: SpanStatusCode.ERROR };
}
