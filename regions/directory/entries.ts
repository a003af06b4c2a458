import { randomBytes } from "node:crypto";

/** Where a user lives, as the directory says: `user.<id>` → HomeEntry. */
export interface HomeEntry {
	region: string;
	/** Bumped by every move; a write carrying an older epoch is refused (fencing). */
	epoch: number;
	state: "active" | "moving";
	/** Residency rule: the user may only move within its jurisdiction. */
	pinned: boolean;
}

/** Identity kinds that resolve to a user through a blind index (`identity.<kind>.<hmac>` → { userId }). */
export const IDENTITY_KINDS = ["username", "email", "phone", "wechat"] as const;
export type IdentityKind = (typeof IDENTITY_KINDS)[number];

export interface IdentityEntry {
	userId: string;
}

export const USER_ID = /^[0-9a-z]{26}$/;

export function isUserId(id: unknown): id is string {
	return typeof id === "string" && USER_ID.test(id);
}

export const userKey = (userId: string) => `user.${userId}`;
export const identityKey = (kind: IdentityKind, blind: string) => `identity.${kind}.${blind}`;
export const USER_PREFIX = "user.";

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

/**
 * A new user id: 26 lower-case base32 characters, time-ordered (48-bit milliseconds) then
 * 80 random bits, so ids sort by creation and never collide in practice.
 */
export function newUserId(now = Date.now()): string {
	const out = Buffer.allocUnsafe(26);
	for (let t = now, i = 9; i >= 0; i--, t = Math.floor(t / 32)) out[i] = ALPHABET.charCodeAt(t % 32);
	const random = randomBytes(16);
	for (let i = 0; i < 16; i++) out[10 + i] = ALPHABET.charCodeAt(random[i]! % 32);
	// One flat string (not a chain of concatenations): ids live long in caches and keys.
	return out.toString("latin1");
}
