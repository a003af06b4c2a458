import { createHmac } from "node:crypto";
import type { IdentityKind } from "./entries.ts";

export const MIN_BLIND_INDEX_KEY_BYTES = 32;

/** The same person must find the same index whatever case or spacing they typed. */
function normalise(kind: IdentityKind, value: string): string {
	const v = value.normalize("NFC").trim();
	return kind === "email" || kind === "username" ? v.toLowerCase() : v;
}

/**
 * The directory's name for an identity: HMAC-SHA256 under a secret key, so the global directory
 * never holds an e-mail, phone or openid in clear text and cannot be reversed without the key.
 * The kind is part of the MAC, so equal strings of different kinds never collide.
 */
export function blindIndex(key: Buffer, kind: IdentityKind, value: string): string {
	if (key.length < MIN_BLIND_INDEX_KEY_BYTES) throw new Error(`blind index key must be at least ${MIN_BLIND_INDEX_KEY_BYTES} bytes`);
	return createHmac("sha256", key).update(kind).update("\0").update(normalise(kind, value)).digest("base64url");
}
