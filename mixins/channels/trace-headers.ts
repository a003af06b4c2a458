import type { Context, ServiceBroker, Span } from "moleculer";
import { currentRequestID } from "../../regions/runtime/request-context.ts";
import { senderSpan } from "../../regions/runtime/tracing/channel-spans.ts";
import { traceparentOf } from "../../regions/runtime/tracing/ids.ts";

export const REQUEST_ID_HEADER = "x-request-id";
export const TRACEPARENT_HEADER = "traceparent";

/**
 * The sender's request id and W3C trace header, from its context or the request being handled,
 * added to its headers. While tracing is on, `traceparent` names the message's own span (`span`),
 * else the sender's (an unsampled trace carries its decision on); otherwise the one the sender got.
 */
export function withTraceHeaders(headers: Record<string, string>, ctx?: Context, span?: Span): Record<string, string> {
	const out = { ...headers };
	const requestID = ctx?.requestID ?? currentRequestID();
	if (requestID) out[REQUEST_ID_HEADER] = requestID;
	const sender = span ?? senderSpan(ctx);
	const traceparent = sender ? traceparentOf(sender) : (ctx?.meta as { traceparent?: unknown } | undefined)?.traceparent;
	if (typeof traceparent === "string") out[TRACEPARENT_HEADER] = traceparent;
	return out;
}

/** A context for a handler: the sender's request id, its trace header in `meta`, and the payload as params. */
export function contextOf<P>(broker: ServiceBroker, payload: P, headers: Record<string, string>, caller: string): Context<P> {
	const meta: Record<string, string> = {};
	if (headers[TRACEPARENT_HEADER]) meta.traceparent = headers[TRACEPARENT_HEADER];
	return broker.ContextFactory.create(
		broker,
		null as never,
		payload as never,
		{
			requestID: headers[REQUEST_ID_HEADER],
			meta,
			caller
		} as never
	) as Context<P>;
}
