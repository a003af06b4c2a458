import { AsyncLocalStorage } from "node:async_hooks";
import type { Middleware } from "moleculer";

interface RequestScope {
	requestID: string | null;
}

const scope = new AsyncLocalStorage<RequestScope>();

/** The request id of the action or event being handled here, for log lines. */
export function currentRequestID(): string | undefined {
	return scope.getStore()?.requestID ?? undefined;
}

/** Runs every local handler inside its request's scope, so any log line can carry the requestID. */
export const RequestContextMiddleware: Middleware = {
	name: "RequestContext",
	localAction(next: (ctx: any) => Promise<unknown>) {
		return (ctx: any) => scope.run({ requestID: ctx.requestID }, () => next(ctx));
	},
	localEvent(next: (ctx: any) => Promise<unknown>) {
		return (ctx: any) => scope.run({ requestID: ctx.requestID }, () => next(ctx));
	}
} as Middleware;
