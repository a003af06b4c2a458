import { createHash, timingSafeEqual } from "node:crypto";
import type { Env } from "./env.ts";
import { EnvError } from "./env.ts";

export const OPS_TOKEN_ENV = "EDGEHOME_OPS_TOKEN";
export const MIN_OPS_TOKEN_LENGTH = 32;

/** The bearer token of the ops port (/metrics, /readyz): required whenever the port is on. */
export function opsTokenFromEnv(env: Env): string {
	const token = env[OPS_TOKEN_ENV] ?? "";
	if (token.length < MIN_OPS_TOKEN_LENGTH || /\s/.test(token))
		throw new EnvError(
			OPS_TOKEN_ENV,
			token ? "(hidden)" : "",
			`a bearer token of at least ${MIN_OPS_TOKEN_LENGTH} characters without spaces while the ops port is on (or EDGEHOME_METRICS_PORT=off)`
		);
	return token;
}

/** `Authorization: Bearer <token>` (scheme case-insensitive, RFC 9110), compared in constant time. */
export function bearerMatches(header: string | undefined, token: string): boolean {
	const match = /^bearer +(\S+)$/i.exec(header ?? "");
	if (!match) return false;
	const digest = (s: string) => createHash("sha256").update(s).digest();
	return timingSafeEqual(digest(match[1]!), digest(token));
}
