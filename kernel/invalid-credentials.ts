import { Errors } from "moleculer";

/**
 * A wrong password and an unknown login get this one answer, from whichever service finds out
 * (sv-user checks the password, auth-jwt the login): one class, so the two can never drift into
 * telling an attacker which logins exist.
 */
export class InvalidCredentialsError extends Errors.MoleculerClientError {
	constructor() {
		super("login or password is wrong", 401, "INVALID_CREDENTIALS");
	}
}
