import { AmountInvalidError } from "./errors.ts";

/**
 * Amounts are integers of minor units, carried as decimal strings and computed as BigInt: a
 * float never touches money (a JSON number already went through one, so it is refused).
 * Stored in signed 64-bit columns, so every limit stays far below 2^63.
 */

/** The largest amount one request may move unless configured lower: 10^15 minor units. */
export const DEFAULT_MAX_AMOUNT = 10n ** 15n;
/** The configured maximum may not exceed this, so sums of many stay inside a 64-bit column. */
export const MAX_AMOUNT_CEILING = 10n ** 17n;

const DIGITS = /^[0-9]{1,18}$/;

/** A positive amount of at most `max`, or AMOUNT_INVALID saying why. */
export function parseAmount(value: unknown, max: bigint): bigint {
	const amount = parseSigned(value, max);
	if (amount <= 0n) throw new AmountInvalidError(amount === 0n ? "must not be zero" : "must be positive");
	return amount;
}

/** A non-zero amount of at most `max` either way (an adjustment: negative takes money back). */
export function parseSignedAmount(value: unknown, max: bigint): bigint {
	const amount = parseSigned(value, max);
	if (amount === 0n) throw new AmountInvalidError("must not be zero");
	return amount;
}

function parseSigned(value: unknown, max: bigint): bigint {
	if (typeof value !== "string") throw new AmountInvalidError('must be a string of an integer of minor units, e.g. "1050" for 10.50');
	const negative = value.startsWith("-");
	const digits = negative ? value.slice(1) : value;
	if (!DIGITS.test(digits)) throw new AmountInvalidError("must be an integer of minor units (digits only, no decimal point)");
	const amount = BigInt(digits);
	if (amount > max) throw new AmountInvalidError(`must be at most ${max}`, max.toString());
	return negative ? -amount : amount;
}

/** EDGEHOME_MONEY_MAX_AMOUNT, checked at start-up. */
export function maxAmountFrom(raw: string | undefined): bigint {
	if (raw === undefined || raw === "") return DEFAULT_MAX_AMOUNT;
	if (!/^[0-9]{1,18}$/.test(raw) || BigInt(raw) < 1n || BigInt(raw) > MAX_AMOUNT_CEILING)
		throw new Error(`EDGEHOME_MONEY_MAX_AMOUNT must be an integer from 1 to ${MAX_AMOUNT_CEILING} (got "${raw}")`);
	return BigInt(raw);
}
