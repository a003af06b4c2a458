import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ServiceBroker } from "moleculer";
import { sampledRoot } from "./sampler.ts";
import { OTEL_TAG } from "./semantics.ts";

/** The route moleculer-web matched, on the request once matched. */
type MatchedAlias = { fullPath?: string; path?: string } | undefined;

/** What the request's trace context says (mixins/gateway/trace-context.ts). */
interface IncomingTrace {
	requestId: string;
	parent?: { parentId: string; sampled: boolean; spanId: string };
}

/** What a gateway's request action is created with (Moleculer's `parentSpan` option): its parent (the HTTP span), trace and sampling. */
export interface RequestParent {
	id: string | null;
	traceID: string;
	sampled: boolean;
}

/**
 * The server span of one HTTP request to a gateway, the root of its trace here (or the child of
 * the caller's, from an incoming `traceparent`): from the request to the end of the response,
 * named by method and route template, with the status the client got. Its id is the one the
 * response's `traceparent` names. Nothing without tracing; an unsampled request gets only the
 * decision, which the calls it makes follow. Never the path, query, client address or headers.
 */
export function httpServerSpan(
	broker: ServiceBroker,
	gateway: string,
	req: IncomingMessage,
	res: ServerResponse,
	trace: IncomingTrace
): RequestParent | undefined {
	if (!broker.isTracingEnabled()) return undefined;
	const { requestId, parent } = trace;
	const sampled = parent ? parent.sampled : sampledRoot(broker.tracer, requestId);
	if (!sampled) return { id: parent?.parentId ?? null, traceID: requestId, sampled: false };
	const method = req.method ?? "GET";
	const span = broker.tracer.startSpan(method, {
		id: parent?.spanId ?? randomBytes(8).toString("hex"),
		traceID: requestId,
		...(parent ? { parentID: parent.parentId } : {}),
		sampled: true,
		type: "http",
		tags: {
			[OTEL_TAG]: {
				"http.request.method": method,
				"url.scheme": "http",
				"network.protocol.version": req.httpVersion,
				"server.port": req.socket.localPort ?? 0,
				"edgehome.gateway": gateway
			}
		}
	});
	res.once("close", () => {
		const alias = (req as { $alias?: MatchedAlias }).$alias;
		const route = alias ? (alias.fullPath ?? alias.path) : undefined;
		span.name = route ? `${method} ${route}` : method;
		span.addTags({
			[OTEL_TAG]: { ...(span.tags[OTEL_TAG] as object), ...(route ? { "http.route": route } : {}), "http.response.status_code": res.statusCode }
		});
		span.finish();
	});
	return span;
}
