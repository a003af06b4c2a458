import { Errors } from "moleculer";

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
