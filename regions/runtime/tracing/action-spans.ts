import type { ActionSchema, Context, Middleware, ServiceBroker } from "moleculer";
import { homeSpanAttributes } from "./home-attributes.ts";
import { sampledRoot } from "./sampler.ts";
import { OTEL_TAG } from "./semantics.ts";

/** What an action's span says besides Moleculer's facts: called when it starts, and with its response when it ends. */
type ActionTags = (this: unknown, ctx: Context, response?: unknown) => Record<string, unknown> | undefined;

type Handler = (ctx: Context) => Promise<unknown>;

const NO_TAGS = Object.freeze({});

/** The home routing facts of a home-routed call (home-attributes.ts): the attributes of every action's span unless it declares its own. */
function homeTags(ctx: Context): Record<string, unknown> {
	const attributes = homeSpanAttributes(ctx);
	return attributes ? { [OTEL_TAG]: attributes } : NO_TAGS;
}

/**
 * The tags of an action: its own `tracing.tags` function (tracing.mixin.ts), else the home facts; never
 * undefined for an action traced. Moleculer's object form (copies of params, meta or the response) is
 * not taken: it would put what a user sent into spans. Undefined: the action says `tracing: false`.
 */
function tagsOf(action: ActionSchema): ActionTags | undefined {
	const own = action.tracing;
	if (own === false || (typeof own === "object" && own.enabled === false)) return undefined;
	return typeof own === "object" && typeof own.tags === "function" ? (own.tags as ActionTags) : homeTags;
}

/**
 * Moleculer's action spans, made only for sampled traces. The sampling decision is taken first,
 * where a trace starts (`ctx.tracing` unset), as Moleculer's own tracing middleware does inside
 * the span it makes; a context of an unsampled trace then runs its handler as it is: no span,
 * no tags, one comparison. Its calls still carry its id as their parent, its trace id and the
 * decision (Moleculer sends `parentID`, `requestID` and `tracing` with every request), so the
 * trace stays one and unsampled across nodes. A sampled context gets the span Moleculer's
 * middleware would make: same id (the context's), parent, name, tags and outcome.
 */
function spannedAction(broker: ServiceBroker, handler: Handler, action: ActionSchema): Handler {
	const tags = tagsOf(action);
	if (!tags) return handler;
	const tracer = broker.tracer;
	return function spannedAction(ctx: Context): Promise<unknown> {
		if (typeof ctx.tracing !== "boolean") ctx.tracing = sampledRoot(tracer, ctx.requestID || ctx.id);
		if (!ctx.tracing) return handler(ctx);
		const span = ctx.startSpan(`action '${ctx.action?.name}'`, {
			id: ctx.id,
			type: "action",
			traceID: ctx.requestID ?? undefined,
			parentID: ctx.parentID,
			service: ctx.service ?? undefined,
			sampled: true,
			tags: {
				callingLevel: ctx.level,
				action: ctx.action ? { name: ctx.action.name, rawName: (ctx.action as { rawName?: string }).rawName } : null,
				remoteCall: ctx.nodeID !== broker.nodeID,
				callerNodeID: ctx.nodeID,
				nodeID: broker.nodeID,
				options: { timeout: ctx.options.timeout, retries: ctx.options.retries },
				requestID: ctx.requestID,
				...tags.call(ctx.service, ctx)
			}
		});
		return handler(ctx)
			.then(res => {
				span.addTags({ fromCache: ctx.cachedResult, ...tags.call(ctx.service, ctx, res) });
				ctx.finishSpan(span);
				return res;
			})
			.catch(err => {
				span.setError(err);
				ctx.finishSpan(span);
				throw err;
			});
	};
}

/**
 * Registers the action spans (tracing on; the tracer's own action middleware is off, see
 * config.ts). Added once the broker is created, so it is the outermost of its action middlewares,
 * where Moleculer's own tracing sits: a span covers validation, the cacher, retries and the
 * error handler, and the request scope (request-context.ts, inside) sees the span.
 */
export const ActionSpans: Middleware = {
	name: "ActionSpans",
	created(broker: ServiceBroker) {
		if (!broker.isTracingEnabled()) return;
		broker.middlewares.add({
			name: "ActionSpans.local",
			localAction: (handler: Handler, action: ActionSchema) => spannedAction(broker, handler, action)
		} as Middleware);
	}
};
