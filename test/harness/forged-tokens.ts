import type { KeyObject } from "node:crypto";
import { SignJWT } from "jose";
import type { AccessClaims, TokenSettings } from "../../services/auth-jwt/tokens.ts";

/** Times of a forged token, in seconds since the epoch. */
export interface ForgedTimes {
	iat: number;
	nbf: number;
	exp: number;
}

/**
 * An access token signed with a real signing key, carrying times the forger chose (signAccess
 * always derives them from one clock): what someone holding a leaked key could mint.
 */
export function forgeAccess(settings: TokenSettings, key: { kid: string; privateKey: KeyObject }, claims: AccessClaims, times: ForgedTimes): Promise<string> {
	return new SignJWT({ rgn: claims.rgn, ep: claims.ep, cli: claims.cli, sid: claims.sid, iat: times.iat, nbf: times.nbf, exp: times.exp })
		.setProtectedHeader({ alg: "ES256", kid: key.kid, typ: "JWT" })
		.setSubject(claims.sub)
		.setIssuer(settings.issuer)
		.setAudience(settings.audience)
		.setJti(crypto.randomUUID())
		.sign(key.privateKey);
}
