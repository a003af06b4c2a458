import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { MIN_BLIND_INDEX_KEY_BYTES } from "../directory/blind-index.ts";
import type { Env } from "./env.ts";
import { EnvError } from "./env.ts";
import { OPS_TOKEN_ENV } from "./ops-token.ts";

/** A key file only its owner may read (0600), in a folder only its owner may open (0700) when made here. */
function writePrivate(file: string, content: string): void {
	mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
	writeFileSync(file, content, { mode: 0o600 });
}

/** The directory's blind-index key from EDGEHOME_BLIND_INDEX_KEY (base64, ≥ 32 bytes), or undefined. */
export function blindIndexKeyFromEnv(env: Env): Buffer | undefined {
	const raw = env.EDGEHOME_BLIND_INDEX_KEY;
	if (!raw) return undefined;
	const key = Buffer.from(raw, "base64");
	if (key.length < MIN_BLIND_INDEX_KEY_BYTES)
		throw new EnvError("EDGEHOME_BLIND_INDEX_KEY", "(hidden)", `base64 of at least ${MIN_BLIND_INDEX_KEY_BYTES} bytes`);
	return key;
}

/**
 * Embedded mode needs no configuration: without EDGEHOME_BLIND_INDEX_KEY a key is made once and
 * kept beside the data (mode 0600), so identities stay findable across restarts.
 */
export function embeddedBlindIndexKey(env: Env, file: string | undefined): Buffer {
	const fromEnv = blindIndexKeyFromEnv(env);
	if (fromEnv) return fromEnv;
	if (!file) return randomBytes(32);
	if (existsSync(file)) return Buffer.from(readFileSync(file, "utf8").trim(), "base64");
	const key = randomBytes(32);
	writePrivate(file, key.toString("base64"));
	return key;
}

/**
 * A secret of embedded mode: from the environment when set, else made once and kept beside the
 * data (mode 0600), or made fresh for an in-memory run.
 */
function embeddedSecret(env: Env, name: string, file: string | undefined, make: () => string): string {
	const fromEnv = env[name];
	if (fromEnv) return fromEnv;
	if (file && existsSync(file)) return readFileSync(file, "utf8").trim();
	const value = make();
	if (file) writePrivate(file, value);
	return value;
}

/** EDGEHOME_PII_KEYS for embedded mode. */
export function embeddedPiiKeys(env: Env, file: string | undefined): string {
	return embeddedSecret(env, "EDGEHOME_PII_KEYS", file, () => `k1:${randomBytes(32).toString("base64")}`);
}

/** EDGEHOME_OPS_TOKEN for embedded mode; the banner says where it is. */
export function embeddedOpsToken(env: Env, file: string | undefined): string {
	return embeddedSecret(env, OPS_TOKEN_ENV, file, () => randomBytes(32).toString("base64url"));
}
