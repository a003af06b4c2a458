import { Errors } from "moleculer";

/**
 * What sv-money answers besides its parameter checks. Types are the stable codes clients see.
 * Every refusal is raised before anything is written, or after what was written is undone in
 * the same transaction: a refused request changes nothing.
 */

/** The payer's available balance (balance less holds) is below the amount. */
export class InsufficientFundsError extends Errors.MoleculerClientError {
	constructor(currency: string, available: string, amount: string) {
		super(`available ${currency} balance ${available} is less than ${amount}`, 422, "INSUFFICIENT_FUNDS", { currency, available, amount });
	}
}

/** Not an ISO 4217 currency, one without minor units (XAU, XDR, …), or one this region does not hold. */
export class CurrencyNotSupportedError extends Errors.MoleculerClientError {
	constructor(currency: string) {
		super(`currency ${currency} is not supported`, 422, "CURRENCY_NOT_SUPPORTED", { currency });
	}
}

/** An amount is a string of a positive integer of minor units, at most the configured maximum. */
export class AmountInvalidError extends Errors.MoleculerClientError {
	constructor(why: string, max?: string) {
		super(`amount ${why}`, 422, "AMOUNT_INVALID", max === undefined ? { why } : { why, max });
	}
}

export class TransferToSelfError extends Errors.MoleculerClientError {
	constructor() {
		super("a transfer needs another user as recipient", 422, "TRANSFER_TO_SELF");
	}
}

/** The key was first used with another request body: its first answer belongs to that one. */
export class IdempotencyKeyReusedError extends Errors.MoleculerClientError {
	constructor() {
		super("this Idempotency-Key was used with a different request", 422, "IDEMPOTENCY_KEY_REUSED");
	}
}

export class RecipientNotFoundError extends Errors.MoleculerClientError {
	constructor(to: string) {
		super(`no user ${to}`, 404, "RECIPIENT_NOT_FOUND", { to });
	}
}

/** The caller's own transfer of this id (another user's is not found either). */
export class TransferNotFoundError extends Errors.MoleculerClientError {
	constructor(id: string) {
		super(`no transfer ${id}`, 404, "TRANSFER_NOT_FOUND", { id });
	}
}

export class HoldNotFoundError extends Errors.MoleculerClientError {
	constructor(id: string) {
		super(`no hold ${id}`, 404, "HOLD_NOT_FOUND", { id });
	}
}

/** A hold is settled once: captured, voided or expired, it stays so. */
export class HoldNotPendingError extends Errors.MoleculerClientError {
	constructor(id: string, status: string) {
		super(`hold ${id} is ${status}`, 409, "HOLD_NOT_PENDING", { id, status });
	}
}

/** An operator froze the wallet: it neither pays nor receives until unfrozen. */
export class WalletFrozenError extends Errors.MoleculerClientError {
	constructor(userId: string) {
		super(`the wallet of user ${userId} is frozen`, 423, "WALLET_FROZEN", { userId });
	}
}
