import { Errors } from "moleculer";

/** What auth-rbac answers. Types are the stable codes clients see. */

export class RoleNotFoundError extends Errors.MoleculerClientError {
	constructor(role: string) {
		super(`role "${role}" does not exist`, 404, "ROLE_NOT_FOUND", { role });
	}
}

/** The role every user holds implicitly: granting or revoking it means nothing. */
export class ImplicitRoleError extends Errors.MoleculerClientError {
	constructor(role: string) {
		super(`every user holds "${role}"; it cannot be revoked`, 400, "ROLE_IMPLICIT", { role });
	}
}
