import type { ServerResponse } from "node:http";
import { toHttpError } from "./errors.ts";
import type { GatewayRequest, GatewayService } from "./routes.ts";

/**
 * How a gateway writes what moleculer-web does not: the one error shape, and the body length on
 * HEAD. A HEAD answer carries a GET's headers; Node measures a body only when it sends one, so the
 * length is set here.
 */

/** moleculer-web's JSON encoder, with the length a HEAD answer would otherwise lack. */
export function encodeResponse(req: GatewayRequest, res: ServerResponse, data: unknown): string {
	const body = JSON.stringify(data);
	if (req.method === "HEAD") res.setHeader("Content-Length", Buffer.byteLength(body));
	return body;
}

/** Status, `{"error": {code, message, requestId, details?}}`, never a stack or a service name. */
export function sendApiError(this: GatewayService, req: GatewayRequest, res: ServerResponse, err: unknown): void {
	const e = toHttpError(err, Boolean(req.$gatewayRoute), req.$gatewayRoute?.errors);
	if (e.status >= 500) this.logger.error(`${req.method} ${req.url?.split("?")[0]} failed:`, err);
	if (res.headersSent) return void res.destroy();
	const requestId = req.$ctx?.requestID ?? req.$requestId;
	if (!res.hasHeader("X-Request-Id") && requestId) res.setHeader("X-Request-Id", requestId);
	res.statusCode = e.status;
	res.setHeader("Content-Type", "application/json; charset=utf-8");
	res.removeHeader("ETag");
	if (e.retryAfter) res.setHeader("Retry-After", String(e.retryAfter));
	if (e.status === 401) res.setHeader("WWW-Authenticate", 'Bearer realm="edgehome"');
	for (const name in e.headers) res.setHeader(name, e.headers[name]!);
	const body = JSON.stringify({ error: { code: e.code, message: e.message, requestId, ...(e.details ? { details: e.details } : {}) } });
	res.setHeader("Content-Length", Buffer.byteLength(body));
	res.end(body);
}
