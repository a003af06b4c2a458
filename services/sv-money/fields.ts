/**
 * The wallet's request fields, as sv-money's actions and the gateways' wallet routes both check
 * them: the edge refuses nothing that sv-money judges with a code of its own (AMOUNT_INVALID for
 * "0", "-1", "1.5"; CURRENCY_NOT_SUPPORTED for "usd", "XAU").
 */

/** A string of minor units; a JSON number passes too, so that sv-money refuses it with AMOUNT_INVALID saying why (a float has touched it already). */
export const amount = { type: "multi", rules: [{ type: "string", max: 64 }, { type: "number" }] } as const;
export const currency = { type: "string", min: 1, max: 8 } as const;
export const memo = { type: "string", max: 140, optional: true } as const;
/** A username or a user id. */
export const recipient = { type: "string", min: 1, max: 64 } as const;
/** A transfer's or a hold's id. */
export const entityId = { type: "string", max: 36, pattern: /^[0-9a-f-]{36}$/, messages: { stringPattern: "must be an id (UUID)" } } as const;
/** Visible ASCII, as HTTP carries the header. */
export const idempotencyKey = {
	type: "string",
	min: 1,
	max: 255,
	pattern: /^[\x21-\x7e]+$/,
	messages: { stringPattern: "must be 1 to 255 visible ASCII characters" }
} as const;
/** Most hold lifetime: a week. */
export const MAX_HOLD_SECONDS = 7 * 24 * 3600;
export const expiresInSeconds = { type: "number", integer: true, min: 1, max: MAX_HOLD_SECONDS, optional: true } as const;
/** A hold's lifetime when the request names none: an hour. */
export const DEFAULT_HOLD_SECONDS = 3600;
/** Most entries one page lists. */
export const MAX_PAGE = 100;
export const cursor = { type: "string", max: 32, optional: true } as const;
