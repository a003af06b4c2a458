import type { Context, Span } from "moleculer";
import { currentSpan, currentTrace, runInRequestScope } from "../request-context.ts";
import { parseTraceparent, traceIdOf } from "./ids.ts";
import type { TracePosition } from "./position.ts";
import { tracePositionOf } from "./position.ts";
import { sampledRoot } from "./sampler.ts";
import { OTEL_TAG } from "./semantics.ts";

/** The channel store's kind as messaging spans name their system: JetStream is NATS's. */
function messagingSystem(store: "jetstream" | "sqlite"): string {
	return store === "jetstream" ? "nats" : "sqlite";
}

/**
 * The span of a message sent on a durable channel, a child of the sender's span (its context's,
 * else the handler running here), when that trace is sampled. Its id is what the message's
 * `traceparent` names, so the consumer, later and maybe in another region, continues from it.
 */
export function publishSpan(store: "jetstream" | "sqlite", channel: string, messageId: string, ctx?: Context): Span | undefined {
	const parent = (ctx?.span as Span | undefined) ?? currentSpan();
	if (!parent?.sampled) return undefined;
	return parent.startSpan(`send ${channel}`, {
		type: "publish",
		tags: {
			[OTEL_TAG]: {
				"messaging.system": messagingSystem(store),
				"messaging.operation.type": "send",
				"messaging.operation.name": "send",
				"messaging.destination.name": channel,
				"messaging.message.id": messageId
			}
		}
	});
}

/** Where the sender stands in its trace, which a message's `traceparent` names when no message span was opened (an unsampled trace still carries its decision). */
export function senderSpan(ctx?: Context): TracePosition | undefined {
	return (ctx && tracePositionOf(ctx)) ?? currentTrace();
}

/** `publish`, with its span (if any) closed once it settles. */
export async function published<T>(span: Span | undefined, publish: () => Promise<T>): Promise<T> {
	if (!span) return publish();
	try {
		return await publish();
	} catch (err) {
		span.setError(err as Error);
		throw err;
	} finally {
		span.finish();
	}
}

export interface DeliveryFacts {
	store: "jetstream" | "sqlite";
	channel: string;
	group: string;
	id: string;
	attempt: number;
	traceparent: string | undefined;
}

/**
 * Runs a consumer's handler in the span of that delivery (tracing on): the child of the span its
 * `traceparent` names, sampled as that trace was; a message without one starts a trace. The
 * handler's context (`ctx`) carries the span, so its calls and queries are its children. A
 * delivery of an unsampled trace makes no span: its context carries the trace and the decision.
 */
export function consumed<T>(ctx: Context, d: DeliveryFacts, handle: () => Promise<T>): Promise<T> {
	if (!ctx.broker.isTracingEnabled()) return handle();
	const parent = parseTraceparent(d.traceparent);
	// The trace is the one the traceparent names, even if the message's request id says otherwise.
	if (parent && traceIdOf(ctx.requestID ?? "") !== parent.traceId) ctx.requestID = parent.traceId;
	ctx.tracing = parent ? parent.sampled : sampledRoot(ctx.broker.tracer, ctx.requestID || ctx.id);
	if (!ctx.tracing) return runInRequestScope({ requestID: ctx.requestID, trace: tracePositionOf(ctx) }, handle);
	const span = ctx.startSpan(`process ${d.channel}`, {
		type: "consume",
		traceID: ctx.requestID ?? undefined,
		sampled: true,
		...(parent ? { parentID: parent.parentId } : {}),
		tags: {
			[OTEL_TAG]: {
				"messaging.system": messagingSystem(d.store),
				"messaging.operation.type": "process",
				"messaging.operation.name": "process",
				"messaging.destination.name": d.channel,
				"messaging.consumer.group.name": d.group,
				"messaging.message.id": d.id,
				"edgehome.channel.attempt": d.attempt
			}
		}
	});
	return runInRequestScope({ requestID: ctx.requestID, trace: span, span }, handle).then(
		result => {
			ctx.finishSpan(span);
			return result;
		},
		err => {
			span.setError(err);
			ctx.finishSpan(span);
			throw err;
		}
	);
}
