import type { ServerResponse } from "node:http";
import { Errors } from "moleculer";
import type { GatewayRequest } from "./routes.ts";

/** A moleculer-web route middleware (a body parser, or a route's `use`): connect-style, an error one takes four arguments. */
export type RouteMiddleware = (this: unknown, ...args: unknown[]) => void;

/** What moleculer-web makes of a middleware's failure: its message, status and type, as a MoleculerError. */
function asMoleculerError(err: unknown): Errors.MoleculerError {
	if (err instanceof Errors.MoleculerError) return err;
	if (err instanceof Error) {
		const e = err as Error & { code?: unknown; status?: number; type?: string };
		return new Errors.MoleculerError(e.message, (e.code as number | undefined) || e.status || 500, e.type as string);
	}
	return new Errors.MoleculerError(String(err));
}

/**
 * Runs a route's middlewares in order, as moleculer-web's compose does (after a failure only the
 * error middlewares), and answers at once when they all finish at once (a request without a body):
 * a promise only for a body still being read.
 */
export function runMiddlewares(self: unknown, middlewares: readonly RouteMiddleware[], req: GatewayRequest, res: ServerResponse): void | Promise<void> {
	let outcome: { err: unknown } | undefined;
	let settle: ((err: unknown) => void) | undefined;
	const next = (i: number, err?: unknown): void => {
		if (i >= middlewares.length) {
			if (settle) settle(err);
			else outcome = { err };
			return;
		}
		const middleware = middlewares[i]!;
		const then = (e?: unknown) => next(i + 1, e);
		if (err) {
			if (middleware.length === 4) middleware.call(self, err, req, res, then);
			else next(i + 1, err);
		} else if (middleware.length < 4) middleware.call(self, req, res, then);
		else next(i + 1);
	};
	next(0);
	if (outcome) {
		if (outcome.err) throw asMoleculerError(outcome.err);
		return;
	}
	return new Promise<void>((resolve, reject) => {
		settle = err => (err ? reject(asMoleculerError(err)) : resolve());
	});
}
