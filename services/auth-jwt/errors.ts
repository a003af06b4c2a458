import { Errors } from "moleculer";
import type { TokenErrorCode } from "./tokens.ts";

/** What auth-jwt answers. Types are the stable codes clients see; messages name no secret. */

/** A wrong password and an unknown login get this same answer (shared with the other service that can tell). */
export { InvalidCredentialsError } from "../../kernel/invalid-credentials.ts";

/** The login gate's back-off, or WeChat's own frequency limit. */
export class RateLimitedError extends Errors.MoleculerClientError {
	constructor(message: string, retryAfterS: number) {
		super(message, 429, "RATE_LIMITED", { retryAfter: retryAfterS });
	}
}

export class RefreshInvalidError extends Errors.MoleculerClientError {
	constructor() {
		super("refresh token is not valid", 401, "REFRESH_INVALID");
	}
}

/** Spent within the grace window: a concurrent refresh of the same client, not a theft. */
export class RefreshConflictError extends Errors.MoleculerClientError {
	constructor() {
		super("this refresh token was just used by another refresh", 409, "REFRESH_CONFLICT");
	}
}

/** Spent long ago: a replay, so the whole session has been ended. */
export class RefreshReusedError extends Errors.MoleculerClientError {
	constructor() {
		super("refresh token was already used: the session has ended", 401, "REFRESH_REUSED");
	}
}

/** Another user's session is not found either, exactly like one that never existed. */
export class SessionNotFoundError extends Errors.MoleculerClientError {
	constructor() {
		super("no such session", 404, "SESSION_NOT_FOUND");
	}
}

export class SessionRevokedError extends Errors.MoleculerClientError {
	constructor() {
		super("session has ended", 401, "SESSION_REVOKED");
	}
}

/** An access token refused: its `type` is the check that failed (TOKEN_SIGNATURE, TOKEN_REGION, …). */
export class TokenRefusedError extends Errors.MoleculerClientError {
	constructor(code: TokenErrorCode | "TOKEN_CLIENT", message: string) {
		super(message, 401, code);
	}
}

/** This region has no signing key yet (first start, before its key is loaded). */
export class NoSigningKeyError extends Errors.MoleculerError {
	constructor() {
		super("no signing key yet", 503, "AUTH_UNAVAILABLE");
	}
}

/** This node cannot be sure of a region's revocations right now: refused rather than guessed, retry shortly. */
export class RevocationsUnknownError extends Errors.MoleculerRetryableError {
	constructor(region: string) {
		super(`sessions of region ${region} cannot be confirmed right now`, 503, "AUTH_UNAVAILABLE", { retryAfter: 2 });
	}
}

export class WxNotConfiguredError extends Errors.MoleculerError {
	constructor() {
		super("WeChat login is not configured", 503, "WX_NOT_CONFIGURED");
	}
}

/** Invalid, used, missing or refused by WeChat's risk control: the client needs a new code. */
export class WxCodeInvalidError extends Errors.MoleculerClientError {
	constructor(errcode: number) {
		super("WeChat login code is invalid or was already used", 401, "WX_CODE_INVALID", { errcode });
	}
}

/** WeChat failed us; a fixed message, since the request URL carries the secret. */
export class UpstreamFailedError extends Errors.MoleculerError {
	constructor(reason: string, data?: Record<string, unknown>) {
		super("WeChat login is unavailable right now", 502, "UPSTREAM_FAILED", { upstream: "wechat", reason, ...data });
	}
}

export class UpstreamTimeoutError extends Errors.MoleculerError {
	constructor(timeoutMs: number) {
		super("WeChat did not answer in time", 504, "UPSTREAM_TIMEOUT", { upstream: "wechat", timeoutMs });
	}
}
