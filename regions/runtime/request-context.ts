import { AsyncLocalStorage } from "node:async_hooks";
import type { Context, Middleware, Span } from "moleculer";
import type { TracePosition } from "./tracing/position.ts";
import { tracePositionOf } from "./tracing/position.ts";

export interface RequestScope {
	requestID: string | null;
	/** Where the handler running here stands in its trace, while tracing is on (sampled or not). */
	trace?: TracePosition | undefined;
	/** Its span, when its trace is sampled: the parent of the queries and messages it makes. */
	span?: Span | undefined;
}

const scope = new AsyncLocalStorage<RequestScope>();

/** The request id of the action or event being handled here, for log lines. */
export function currentRequestID(): string | undefined {
	return scope.getStore()?.requestID ?? undefined;
}

/** The span of the action, event or channel message being handled here, when its trace is sampled. */
export function currentSpan(): Span | undefined {
	return scope.getStore()?.span;
}

/** The trace position of the handler running here (tracing on): what its log lines and messages name. */
export function currentTrace(): TracePosition | undefined {
	return scope.getStore()?.trace;
}

/** Runs `fn` as part of a request handled outside an action (a channel message): its log lines and queries belong to it. */
export function runInRequestScope<T>(request: RequestScope, fn: () => T): T {
	return scope.run(request, fn);
}

function scopeOf(ctx: Context): RequestScope {
	return { requestID: ctx.requestID, trace: tracePositionOf(ctx), span: (ctx.span as Span | null) ?? undefined };
}

/** Runs every local handler inside its request's scope, so any log line can carry the requestID (and the trace, while tracing is on). */
export const RequestContextMiddleware: Middleware = {
	name: "RequestContext",
	localAction(next: (ctx: any) => Promise<unknown>) {
		return (ctx: any) => scope.run(scopeOf(ctx), () => next(ctx));
	},
	localEvent(next: (ctx: any) => Promise<unknown>) {
		return (ctx: any) => scope.run(scopeOf(ctx), () => next(ctx));
	}
} as Middleware;
