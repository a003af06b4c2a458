import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";
import { Errors } from "moleculer";
import type { Env } from "../regions/runtime/env.ts";
import { EnvError } from "../regions/runtime/env.ts";

/**
 * AES-256-GCM for what must not sit in clear in a database: personal data (sv-user) and token
 * signing keys (auth-jwt). Each value is stored as `b1.iv.tag.ciphertext` (base64url) beside the
 * id of the key that sealed it, so keys can rotate: new writes use the first key of
 * EDGEHOME_PII_KEYS, reads find theirs by id. The table, field and row a value belongs to are its
 * associated data, so a value copied into another row or field no longer opens.
 */
export interface PiiKeys {
	/** Id of the key that seals new values. */
	current: string;
	/** Per key id, the AES key derived from it for sealing. */
	sealing: Map<string, Buffer>;
	/** The HMAC key, derived from the current key, under which the login throttle names unknown logins. */
	loginThrottle: Buffer;
}

/** Where a sealed value lives; a value opens only where it was sealed. */
export interface SealedPlace {
	table: string;
	field: string;
	row: string;
}

/** Format marker of values bound to their place (values of the older, unbound format are refused). */
const FORMAT = "b1";

/**
 * One configured key serves several purposes through HKDF-SHA256, each under its own label, so
 * no two purposes ever share a key (a throttle's HMAC output says nothing about the sealing key).
 */
export const KEY_PURPOSES = { sealing: "edgehome pii sealing v1", loginThrottle: "edgehome login throttle v1" } as const;

export function deriveKey(master: Buffer, purpose: keyof typeof KEY_PURPOSES): Buffer {
	return Buffer.from(hkdfSync("sha256", master, Buffer.alloc(0), KEY_PURPOSES[purpose], 32));
}

/** `kid:base64key[,kid:base64key…]`, each key 32 bytes; the first one seals new values. */
export function parsePiiKeys(raw: string): PiiKeys {
	const masters = new Map<string, Buffer>();
	for (const part of raw
		.split(",")
		.map(s => s.trim())
		.filter(Boolean)) {
		const [kid, b64] = part.split(":");
		const key = Buffer.from(b64 ?? "", "base64");
		if (!kid || !/^[A-Za-z0-9_-]{1,16}$/.test(kid) || key.length !== 32)
			throw new Error("EDGEHOME_PII_KEYS: expected kid:base64(32 bytes)[,…] with kids of [A-Za-z0-9_-]{1,16}");
		masters.set(kid, key);
	}
	const current = masters.keys().next().value;
	if (!current) throw new Error("EDGEHOME_PII_KEYS: no key given");
	const sealing = new Map([...masters].map(([kid, key]) => [kid, deriveKey(key, "sealing")]));
	return { current, sealing, loginThrottle: deriveKey(masters.get(current)!, "loginThrottle") };
}

/** EDGEHOME_PII_KEYS, required; a missing or malformed value is a configuration error that hides the keys. */
export function piiKeysFromEnv(env: Env, purpose: string): PiiKeys {
	const raw = env.EDGEHOME_PII_KEYS;
	if (!raw) throw new EnvError("EDGEHOME_PII_KEYS", "", `kid:base64(32 bytes)[,…], the keys that ${purpose}`);
	try {
		return parsePiiKeys(raw);
	} catch (err) {
		throw new EnvError("EDGEHOME_PII_KEYS", "(hidden)", (err as Error).message.replace(/^EDGEHOME_PII_KEYS: /, ""));
	}
}

/** A sealed value that cannot be opened where it was read: moved from another row or field, altered, or unbound (older format). */
export class SealedValueError extends Errors.MoleculerError {
	constructor(place: SealedPlace, reason: string) {
		super(`sealed ${place.table}.${place.field} of row ${place.row} cannot be opened: ${reason}`, 500, "SEALED_VALUE_INVALID", { ...place });
	}
}

function associatedData(place: SealedPlace): Buffer {
	return Buffer.from(JSON.stringify([FORMAT, place.table, place.field, place.row]), "utf8");
}

export function seal(keys: PiiKeys, plaintext: string, place: SealedPlace): { kid: string; value: string } {
	const iv = randomBytes(12);
	const cipher = createCipheriv("aes-256-gcm", keys.sealing.get(keys.current)!, iv);
	cipher.setAAD(associatedData(place));
	const data = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
	return { kid: keys.current, value: [FORMAT, ...[iv, cipher.getAuthTag(), data].map(b => b.toString("base64url"))].join(".") };
}

export function open(keys: PiiKeys, kid: string, sealed: string, place: SealedPlace): string {
	const key = keys.sealing.get(kid);
	if (!key) throw new SealedValueError(place, `no PII key "${kid}" configured`);
	const [format, iv, tag, data] = sealed.split(".");
	if (format !== FORMAT || !iv || !tag || data === undefined) throw new SealedValueError(place, "not sealed to its row (older or unknown format)");
	try {
		// A full 16-byte tag only: GCM would otherwise accept a truncated one, far easier to forge.
		const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(iv, "base64url"), { authTagLength: 16 });
		decipher.setAAD(associatedData(place));
		decipher.setAuthTag(Buffer.from(tag, "base64url"));
		return Buffer.concat([decipher.update(Buffer.from(data, "base64url")), decipher.final()]).toString("utf8");
	} catch {
		throw new SealedValueError(place, "it was sealed for another row or field, or altered");
	}
}
