import { createHash } from "node:crypto";
import { IdempotencyKeyReusedError } from "./errors.ts";

/**
 * A request's fingerprint, stored with the key that first carried it: the same key with the same
 * request answers what the first one did, with another request IDEMPOTENCY_KEY_REUSED. Keys are
 * kept as long as the transfer or hold they made (for good), beyond the 24 hours clients rely on.
 */
export function requestHash(operation: string, fields: readonly (string | null)[]): string {
	return createHash("sha256")
		.update(JSON.stringify([operation, ...fields]))
		.digest("hex");
}

/** The stored row answers a repeat of the request that made it; any other request with its key is refused. */
export function replayOf<R extends { request_hash: string | null }>(stored: R, hash: string): R {
	if (stored.request_hash !== hash) throw new IdempotencyKeyReusedError();
	return stored;
}
