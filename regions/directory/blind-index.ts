import { createHmac } from "node:crypto";
import type { IdentityKind } from "./entries.ts";
import { identityForm } from "./identity-form.ts";

export const MIN_BLIND_INDEX_KEY_BYTES = 32;

/**
 * The directory's name for an identity: HMAC-SHA256 under a secret key, so the global directory
 * never holds an e-mail, phone or openid in clear text and cannot be reversed without the key.
 * The kind is part of the MAC, so equal strings of different kinds never collide; the value is
 * taken in its identity form, so every spelling of one identity finds the same index.
 */
export function blindIndex(key: Buffer, kind: IdentityKind, value: string): string {
	if (key.length < MIN_BLIND_INDEX_KEY_BYTES) throw new Error(`blind index key must be at least ${MIN_BLIND_INDEX_KEY_BYTES} bytes`);
	return createHmac("sha256", key).update(kind).update("\0").update(identityForm(kind, value)).digest("base64url");
}
