import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { EnvError } from "../../regions/runtime/env.ts";
import type { Env } from "../../regions/runtime/env.ts";

/**
 * AES-256-GCM for what must not sit in clear in a database: personal data (sv-user) and token
 * signing keys (auth-jwt). Each value is stored as `iv.tag.ciphertext` (base64url)
 * beside the id of the key that sealed it, so keys can rotate: new writes use the first key of
 * EDGEHOME_PII_KEYS, reads find theirs by id.
 */
export interface PiiKeys {
	current: string;
	keys: Map<string, Buffer>;
}

/** `kid:base64key[,kid:base64key…]`, each key 32 bytes; the first one seals new values. */
export function parsePiiKeys(raw: string): PiiKeys {
	const keys = new Map<string, Buffer>();
	for (const part of raw.split(",").map(s => s.trim()).filter(Boolean)) {
		const [kid, b64] = part.split(":");
		const key = Buffer.from(b64 ?? "", "base64");
		if (!kid || !/^[A-Za-z0-9_-]{1,16}$/.test(kid) || key.length !== 32) throw new Error("EDGEHOME_PII_KEYS: expected kid:base64(32 bytes)[,…] with kids of [A-Za-z0-9_-]{1,16}");
		keys.set(kid, key);
	}
	const current = keys.keys().next().value;
	if (!current) throw new Error("EDGEHOME_PII_KEYS: no key given");
	return { current, keys };
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

export function seal(keys: PiiKeys, plaintext: string): { kid: string; value: string } {
	const iv = randomBytes(12);
	const cipher = createCipheriv("aes-256-gcm", keys.keys.get(keys.current)!, iv);
	const data = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
	return { kid: keys.current, value: [iv, cipher.getAuthTag(), data].map(b => b.toString("base64url")).join(".") };
}

export function open(keys: PiiKeys, kid: string, sealed: string): string {
	const key = keys.keys.get(kid);
	if (!key) throw new Error(`no PII key "${kid}" configured`);
	const [iv, tag, data] = sealed.split(".").map(s => Buffer.from(s, "base64url"));
	const decipher = createDecipheriv("aes-256-gcm", key, iv!);
	decipher.setAuthTag(tag!);
	return Buffer.concat([decipher.update(data!), decipher.final()]).toString("utf8");
}
