import { Errors } from "moleculer";

/** What sv-user answers besides its parameter checks. Types are the stable codes clients see. */

const TAKEN: Record<string, string> = { username: "USERNAME_TAKEN", email: "EMAIL_TAKEN", phone: "PHONE_TAKEN", wechat: "WECHAT_TAKEN" };

/** An identity another user holds: USERNAME_TAKEN, EMAIL_TAKEN, PHONE_TAKEN, WECHAT_TAKEN; `data.field` names it. */
export class IdentityInUseError extends Errors.MoleculerClientError {
	constructor(kind: string) {
		super(`${kind} is already taken`, 409, TAKEN[kind] ?? "IDENTITY_TAKEN", { field: kind });
	}
}

/** A wrong password and an unknown login get this same answer (shared with the other service that can tell). */
export { InvalidCredentialsError } from "../../kernel/invalid-credentials.ts";

/** No profile with this id in this region. */
export class ProfileNotFoundError extends Errors.MoleculerClientError {
	constructor() {
		super("user not found", 404, "USER_NOT_FOUND");
	}
}

export class LoginNotFoundError extends Errors.MoleculerClientError {
	constructor() {
		super("no user has this login", 404, "USER_NOT_FOUND");
	}
}

/** Checks the parameter rules cannot make, answered like them (VALIDATION_ERROR, the field named). */
export class PasswordHasUsernameError extends Errors.ValidationError {
	constructor() {
		super("password must not contain the username", "VALIDATION_ERROR", [{ field: "password", type: "containsUsername" }]);
	}
}

export class NothingToChangeError extends Errors.ValidationError {
	constructor() {
		super("nothing to change", "VALIDATION_ERROR", [{ field: "(body)", type: "required" }]);
	}
}
