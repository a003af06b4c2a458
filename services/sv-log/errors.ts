import { Errors } from "moleculer";

/** What sv-log answers besides its parameter checks. Types are the stable codes clients see. */

/** Another node appended to the region's chain first: recomputed and appended again, never shown to a client. */
export class ChainConflictError extends Errors.MoleculerError {
	constructor(region: string) {
		super(`the audit chain of ${region} moved on while a batch was being appended`, 409, "AUDIT_CHAIN_CONFLICT", { region });
	}
}

/** A query's time range that selects nothing by construction. */
export class AuditRangeInvalidError extends Errors.MoleculerClientError {
	constructor(from: string, to: string) {
		super(`"from" (${from}) must be before "to" (${to})`, 422, "AUDIT_RANGE_INVALID", { from, to });
	}
}

/** The store is not one sv-log knows, or lacks what it needs: a configuration error at start. */
export class AuditStoreConfigError extends Error {
	constructor(message: string) {
		super(message);
		this.name = "AuditStoreConfigError";
	}
}
