import type { KeyObject } from "node:crypto";
import { randomUUID } from "node:crypto";
import { decodeProtectedHeader, errors as joseErrors, jwtVerify, SignJWT } from "jose";
import type { ClientType } from "../../regions/region.ts";
import { CLIENT_TYPES } from "../../regions/region.ts";
import { KID, kidRegion } from "./key-id.ts";

/** Access tokens live 15 minutes (no valid token says longer); a verifier forgives this much clock skew. */
export const ACCESS_TTL_S = 15 * 60;
export const CLOCK_TOLERANCE_S = 30;
export const ALGORITHM = "ES256";

export interface AccessClaims {
	/** the user id */
	sub: string;
	/** the user's home region */
	rgn: string;
	/** the directory epoch of that home */
	ep: number;
	/** the client type the session belongs to */
	cli: ClientType;
	/** the session id */
	sid: string;
}

export interface VerifiedAccess extends AccessClaims {
	jti: string;
	kid: string;
	exp: number;
}

export type TokenErrorCode =
	| "TOKEN_MALFORMED"
	| "TOKEN_ALGORITHM"
	| "TOKEN_KID_UNKNOWN"
	| "TOKEN_SIGNATURE"
	| "TOKEN_EXPIRED"
	| "TOKEN_NOT_YET_VALID"
	| "TOKEN_ISSUER"
	| "TOKEN_AUDIENCE"
	| "TOKEN_CLAIMS"
	| "TOKEN_REGION"
	| "TOKEN_ISSUED_IN_FUTURE"
	| "TOKEN_LIFETIME";

export class TokenError extends Error {
	readonly code: TokenErrorCode;
	constructor(code: TokenErrorCode, message: string) {
		super(message);
		this.name = "TokenError";
		this.code = code;
	}
}

export interface SigningKey {
	kid: string;
	privateKey: KeyObject;
}

export interface TokenSettings {
	issuer: string;
	audience: string;
}

export async function signAccess(settings: TokenSettings, key: SigningKey, claims: AccessClaims, now = Date.now()): Promise<string> {
	if (!KID.test(key.kid)) throw new Error(`signing key id "${key.kid}" is not <region>-<generation>`);
	const iat = Math.floor(now / 1000);
	return new SignJWT({ rgn: claims.rgn, ep: claims.ep, cli: claims.cli, sid: claims.sid })
		.setProtectedHeader({ alg: ALGORITHM, kid: key.kid, typ: "JWT" })
		.setSubject(claims.sub)
		.setIssuer(settings.issuer)
		.setAudience(settings.audience)
		.setJti(randomUUID())
		.setIssuedAt(iat)
		.setNotBefore(iat)
		.setExpirationTime(iat + ACCESS_TTL_S)
		.sign(key.privateKey);
}

/**
 * Verifies an access token locally: the algorithm is pinned to ES256 (so `none` and HMAC with a
 * public key are refused before any key is used), the `kid` is only a key into `keys` — never a
 * path or URL — and issuer, audience, time and every claim are checked. The key must belong to the
 * user's home region (`rgn`), and the token may neither be issued in the future nor live longer
 * than an access token does: a leaked key cannot mint tokens for other regions' users or for years.
 */
export async function verifyAccess(settings: TokenSettings, keys: ReadonlyMap<string, KeyObject>, token: string, now = Date.now()): Promise<VerifiedAccess> {
	if (typeof token !== "string" || token.length > 4096 || token.split(".").length !== 3) throw new TokenError("TOKEN_MALFORMED", "not a JWT");
	let header: { alg?: string; kid?: string };
	try {
		header = decodeProtectedHeader(token);
	} catch {
		throw new TokenError("TOKEN_MALFORMED", "unreadable header");
	}
	if (header.alg !== ALGORITHM) throw new TokenError("TOKEN_ALGORITHM", `algorithm ${String(header.alg)} is not accepted`);
	const kid = typeof header.kid === "string" && KID.test(header.kid) ? header.kid : undefined;
	const key = kid ? keys.get(kid) : undefined;
	if (!kid || !key) throw new TokenError("TOKEN_KID_UNKNOWN", "unknown signing key");
	let payload: Record<string, unknown>;
	try {
		({ payload } = await jwtVerify(token, key, {
			algorithms: [ALGORITHM],
			issuer: settings.issuer,
			audience: settings.audience,
			clockTolerance: CLOCK_TOLERANCE_S,
			currentDate: new Date(now),
			requiredClaims: ["sub", "jti", "exp", "iat", "nbf"]
		}));
	} catch (err) {
		throw fromJose(err);
	}
	const { sub, rgn, ep, cli, sid, jti, exp, iat } = payload;
	if (
		typeof sub !== "string" ||
		typeof rgn !== "string" ||
		typeof ep !== "number" ||
		typeof sid !== "string" ||
		typeof jti !== "string" ||
		typeof exp !== "number" ||
		typeof iat !== "number" ||
		!(CLIENT_TYPES as readonly unknown[]).includes(cli)
	)
		throw new TokenError("TOKEN_CLAIMS", "missing or malformed claims");
	if (kidRegion(kid) !== rgn) throw new TokenError("TOKEN_REGION", "token signed by another region's key");
	if (iat > now / 1000 + CLOCK_TOLERANCE_S) throw new TokenError("TOKEN_ISSUED_IN_FUTURE", "token issued in the future");
	if (exp - iat > ACCESS_TTL_S) throw new TokenError("TOKEN_LIFETIME", "token lives longer than an access token may");
	return { sub, rgn, ep, cli: cli as ClientType, sid, jti, exp, kid };
}

function fromJose(err: unknown): TokenError {
	if (err instanceof joseErrors.JWTExpired) return new TokenError("TOKEN_EXPIRED", "token expired");
	if (err instanceof joseErrors.JWTClaimValidationFailed) {
		if (err.claim === "iss") return new TokenError("TOKEN_ISSUER", "wrong issuer");
		if (err.claim === "aud") return new TokenError("TOKEN_AUDIENCE", "wrong audience");
		if (err.claim === "nbf") return new TokenError("TOKEN_NOT_YET_VALID", "token not valid yet");
		return new TokenError("TOKEN_CLAIMS", `claim ${err.claim} is invalid`);
	}
	if (err instanceof joseErrors.JWSSignatureVerificationFailed) return new TokenError("TOKEN_SIGNATURE", "signature does not verify");
	if (err instanceof joseErrors.JOSEAlgNotAllowed) return new TokenError("TOKEN_ALGORITHM", "algorithm not accepted");
	return new TokenError("TOKEN_MALFORMED", "token cannot be read");
}

/** What a login or a refresh answers: the access token, the next refresh token, and whose they are. */
export interface Tokens {
	accessToken: string;
	refreshToken: string;
	tokenType: "Bearer";
	expiresIn: number;
	region: string;
	userId: string;
	sid: string;
}

export interface WxTokens extends Tokens {
	/** This login registered the user. */
	created: boolean;
}
