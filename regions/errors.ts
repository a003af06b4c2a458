import { Errors } from "moleculer";
import { DirectoryError } from "./directory/store.ts";

/**
 * The routing errors every region speaks. Types are the stable codes clients see; HTTP-like
 * codes let the gateways map them without a table of their own.
 */

/** The caller's view of the user's home is stale: `data` holds the true region and epoch. */
export class WrongRegionError extends Errors.MoleculerError {
	constructor(userId: string, region: string, epoch: number) {
		super(`user ${userId} is homed in ${region} (epoch ${epoch})`, 421, "WRONG_REGION", { userId, region, epoch });
	}
}

export class UserMovingError extends Errors.MoleculerError {
	constructor(userId: string, retryAfterS = 1) {
		super(`user ${userId} is moving to another region; retry shortly`, 503, "USER_MOVING", { userId, retryAfter: retryAfterS });
	}
}

export class RegionUnavailableError extends Errors.MoleculerError {
	constructor(region: string, retryAfterS = 5, cause?: string) {
		super(`region ${region} is unavailable`, 503, "REGION_UNAVAILABLE", { region, retryAfter: retryAfterS, cause });
	}
}

export class UserNotFoundError extends Errors.MoleculerClientError {
	constructor(userId: string) {
		super(`user ${userId} is not known`, 404, "USER_NOT_FOUND", { userId });
	}
}

export class RoutingLoopError extends Errors.MoleculerError {
	constructor(userId: string, hops: number) {
		super(`call for user ${userId} was forwarded ${hops} times; refusing to forward again`, 508, "ROUTING_LOOP", { userId, hops });
	}
}

export class DirectoryUnavailableError extends Errors.MoleculerError {
	constructor(message: string) {
		super(message, 503, "DIRECTORY_UNAVAILABLE", { retryAfter: 5 });
	}
}

export class ResidencyViolationError extends Errors.MoleculerClientError {
	constructor(userId: string, from: string, to: string) {
		super(`user ${userId} is pinned to ${from}'s jurisdiction and cannot move to ${to}`, 403, "RESIDENCY_VIOLATION", { userId, from, to });
	}
}

export class MoveInProgressError extends Errors.MoleculerClientError {
	constructor(userId: string) {
		super(`user ${userId} is already being moved`, 409, "MOVE_IN_PROGRESS", { userId });
	}
}

export class MoveFailedError extends Errors.MoleculerError {
	constructor(userId: string, step: string, cause: string) {
		super(`moving user ${userId} failed at ${step} and was rolled back: ${cause}`, 500, "MOVE_FAILED", { userId, step });
	}
}

/**
 * The call was sent but no answer came (timeout, or its node was lost mid-call): it may or may
 * not have run. A write retried after this must be idempotent (carry the service's key) to be
 * safe; home-routed writes are never re-sent by the broker for this reason.
 */
export class OutcomeUnknownError extends Errors.MoleculerRetryableError {
	constructor(userId: string, action: string, cause: string) {
		super(`the outcome of ${action} for user ${userId} is unknown: ${cause}`, 504, "OUTCOME_UNKNOWN", { userId, action, retryAfter: 1 });
	}
}

/**
 * The region's database chose the write as a deadlock's victim on every run the fence allows:
 * InnoDB rolled each run back whole, so nothing of it was applied, and sending it again is safe.
 */
export class WriteConflictError extends Errors.MoleculerRetryableError {
	constructor(userId: string, runs: number) {
		super(`the write for user ${userId} met a conflicting write on each of its ${runs} runs and was not applied; retry`, 503, "WRITE_CONFLICT", {
			userId,
			retryAfter: 1
		});
	}
}

/**
 * Answers that are the system working as designed, not a failing endpoint: the circuit breaker
 * must not count them, or one moving user or one region down would open the breaker for every
 * healthy user of the same action.
 */
export const DOMAIN_ERROR_TYPES: ReadonlySet<string> = new Set([
	"WRONG_REGION",
	"USER_MOVING",
	"REGION_UNAVAILABLE",
	"USER_NOT_FOUND",
	"ROUTING_LOOP",
	"DIRECTORY_UNAVAILABLE",
	"RESIDENCY_VIOLATION",
	"MOVE_IN_PROGRESS",
	"MOVE_FAILED",
	"MOVE_FENCED",
	"OUTCOME_UNKNOWN",
	"UNKNOWN_REGION",
	"WRITE_CONFLICT"
]);

/** What the circuit breaker counts against an endpoint: it timed out, or failed in a way no domain answer explains. */
export function isEndpointFailure(err: unknown): boolean {
	if (!err) return false;
	const e = err as { type?: string; code?: number };
	if (e.type === "REQUEST_TIMEOUT") return true;
	if (err instanceof Errors.MoleculerClientError || (e.type !== undefined && DOMAIN_ERROR_TYPES.has(e.type))) return false;
	return (e.code ?? 500) >= 500;
}

/** A move's import or delete reached a region whose ownership row no longer names that move: nothing was written. */
export class MoveFencedError extends Errors.MoleculerError {
	constructor(userId: string, moveId: string, why: string) {
		super(`move ${moveId} of user ${userId} may no longer write here: ${why}`, 409, "MOVE_FENCED", { userId, moveId });
	}
}

/** A directory failure in the words clients get: an unreachable directory is a retryable 503; anything else stays as it is. */
export function fromDirectoryFailure(err: unknown): never {
	if (err instanceof DirectoryError && err.code === "DIRECTORY_UNAVAILABLE") throw new DirectoryUnavailableError(err.message);
	throw err;
}
