import { Errors } from "moleculer";

/**
 * What sv-region answers besides the routing errors every region speaks (regions/errors.ts).
 * Types are the stable codes clients see.
 */

export class IdentityTakenError extends Errors.MoleculerClientError {
	constructor(kind: string) {
		super(`${kind} is already taken`, 409, "IDENTITY_TAKEN", { kind });
	}
}

/** No user has this identity: the same answer whichever identity kind was asked. */
export class IdentityNotFoundError extends Errors.MoleculerClientError {
	constructor(kind: string) {
		super(`no user has this ${kind}`, 404, "USER_NOT_FOUND", { kind });
	}
}

/** A handover step that does not apply to the ownership row as it stands (regions/ownership/handover.ts). */
export class HandoverRefusedError extends Errors.MoleculerError {
	constructor(message: string, userId: string, step: string) {
		super(message, 409, "HANDOVER_REFUSED", { userId, step });
	}
}

export class MoveNotFoundError extends Errors.MoleculerClientError {
	constructor(moveId: string) {
		super(`no move ${moveId} is known`, 404, "MOVE_NOT_FOUND", { moveId });
	}
}

export class UnknownRegionError extends Errors.MoleculerClientError {
	constructor(region: string) {
		super(`unknown region "${region}"`, 422, "UNKNOWN_REGION", { region });
	}
}

/** `unregister` was asked to undo a user entry that has changed since the caller read it. */
export class EntryChangedError extends Errors.MoleculerError {
	constructor(userId: string, revision: number) {
		super(`the directory entry of user ${userId} changed (now at revision ${revision})`, 409, "REVISION_MISMATCH", { userId, revision });
	}
}
