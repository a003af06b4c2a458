import { Errors } from "moleculer";
import type { GatewayRequest } from "./routes.ts";

/**
 * The `Idempotency-Key` header of a route that requires one (`idempotencyKey: true`): the client's
 * name for one intended operation, so that a retry of it is answered instead of applied again. The
 * service behind the route keeps the keys; the edge insists on one, well formed, before the handler runs.
 */

export const IDEMPOTENCY_KEY_HEADER = "Idempotency-Key";

/** 1 to 255 visible ASCII characters: room for a UUID or a client's own composite key, nothing that splits a header or a log line. */
export const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

export const IDEMPOTENCY_KEY_MISSING = "IDEMPOTENCY_KEY_MISSING";
export const IDEMPOTENCY_KEY_INVALID = "IDEMPOTENCY_KEY_INVALID";

/** The request's key, or 400 saying it is missing or malformed (a header sent twice arrives joined by ", ": malformed). */
export function idempotencyKeyOf(req: GatewayRequest): string {
	const key = req.headers["idempotency-key"];
	if (key === undefined) throw new Errors.MoleculerClientError(`this request needs an ${IDEMPOTENCY_KEY_HEADER} header`, 400, IDEMPOTENCY_KEY_MISSING);
	if (typeof key !== "string" || !IDEMPOTENCY_KEY.test(key))
		throw new Errors.MoleculerClientError(`${IDEMPOTENCY_KEY_HEADER} must be 1 to 255 visible ASCII characters, without spaces`, 400, IDEMPOTENCY_KEY_INVALID);
	return key;
}
