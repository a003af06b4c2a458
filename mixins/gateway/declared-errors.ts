import { Errors } from "moleculer";
import { DirectoryUnavailableError, MoveInProgressError, OutcomeUnknownError, RegionUnavailableError, ResidencyViolationError, UserMovingError, UserNotFoundError } from "../../regions/errors.ts";

/**
 * One error as a catalogue declares it: the stable code (Moleculer's `type`) and the status it is
 * raised with. A route lists the ones its handler may pass on; its OpenAPI responses are what the
 * gateway makes of each (`toHttpError`), so the document follows the edge's mapping.
 */
export interface DeclaredError {
	readonly type: string;
	readonly status: number;
}

/** An entry read from the catalogue's own error class, so its values are never restated here. */
export function declared(err: { type: string; code: number }): DeclaredError {
	return { type: err.type, status: err.code };
}

/** What any call from a gateway to a service may end in: Moleculer's own failures and the region runtime's answers. */
export const CALL_FAILURES: readonly DeclaredError[] = [
	declared(new Errors.ServiceNotAvailableError({ action: "-", nodeID: "-" })),
	declared(new Errors.RequestTimeoutError({ action: "-", nodeID: "-" })),
	declared(new RegionUnavailableError("-")),
	declared(new UserMovingError("-")),
	declared(new DirectoryUnavailableError("-")),
	declared(new OutcomeUnknownError("-", "-", "-")),
	// auth-jwt: a region's revocation feed went quiet.
	{ type: "AUTH_UNAVAILABLE", status: 503 },
	{ type: "UPSTREAM_FAILED", status: 502 }
];

export const USER_NOT_FOUND = declared(new UserNotFoundError("-"));
export const RESIDENCY_VIOLATION = declared(new ResidencyViolationError("-", "-", "-"));
export const MOVE_IN_PROGRESS = declared(new MoveInProgressError("-"));

/*
 * The services below have no catalogue of their own yet (#11: sv-user, auth-jwt, auth-rbac,
 * sv-region): their errors are listed as they raise them, to be replaced by their catalogues.
 */

/** A service's own parameter check (422), which the gateway answers as 400. */
export const SERVICE_VALIDATION: DeclaredError = { type: "VALIDATION_ERROR", status: 422 };
export const IDENTITY_TAKEN: readonly DeclaredError[] = ["USERNAME_TAKEN", "EMAIL_TAKEN", "PHONE_TAKEN", "IDENTITY_TAKEN"].map(type => ({ type, status: 409 }));
export const INVALID_CREDENTIALS: DeclaredError = { type: "INVALID_CREDENTIALS", status: 401 };
/** auth-jwt's login throttle and WeChat's frequency limit. */
export const THROTTLED: DeclaredError = { type: "RATE_LIMITED", status: 429 };
export const REFRESH_REFUSED: readonly DeclaredError[] = [
	{ type: "REFRESH_INVALID", status: 401 },
	{ type: "REFRESH_REUSED", status: 401 },
	{ type: "SESSION_REVOKED", status: 401 },
	{ type: "REFRESH_CONFLICT", status: 409 }
];
export const WX_LOGIN_FAILURES: readonly DeclaredError[] = [
	{ type: "WX_CODE_INVALID", status: 401 },
	{ type: "WX_NOT_CONFIGURED", status: 503 },
	{ type: "UPSTREAM_TIMEOUT", status: 504 }
];
export const NOT_FOUND: DeclaredError = { type: "NOT_FOUND", status: 404 };
export const MOVE_NOT_FOUND: DeclaredError = { type: "MOVE_NOT_FOUND", status: 404 };
export const ROLE_NOT_FOUND: DeclaredError = { type: "ROLE_NOT_FOUND", status: 404 };
export const ROLE_IMPLICIT: DeclaredError = { type: "ROLE_IMPLICIT", status: 400 };
export const UNKNOWN_REGION: DeclaredError = { type: "UNKNOWN_REGION", status: 422 };
