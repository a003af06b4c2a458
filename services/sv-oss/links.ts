import { createHmac, hkdfSync, timingSafeEqual } from "node:crypto";
import type { PiiKeys } from "../../kernel/sealing.ts";
import { LinkExpiredError, LinkInvalidError } from "./errors.ts";

/**
 * Download links: `<fileId>.<userId>.<expires>.<mac>`, the MAC an HMAC-SHA256 over the file, its
 * owner, the expiry (Unix seconds) and the file's SHA-256, so a link opens one file with the
 * content it had when the link was made, until it expires. The owner is in clear so any region's
 * gateway can route the download home; the home checks the MAC. The key is derived (HKDF) from
 * the current EDGEHOME_PII_KEYS key, which every region holds, under a label of its own.
 */

export const LINK_TOKEN = /^([0-9a-f-]{36})\.([0-9A-Za-z]{1,26})\.(\d{1,12})\.([A-Za-z0-9_-]{43})$/;

export function linkKey(keys: PiiKeys): Buffer {
	return Buffer.from(hkdfSync("sha256", keys.sealing.get(keys.current)!, Buffer.alloc(0), "edgehome file links v1", 32));
}

function mac(key: Buffer, fileId: string, userId: string, expires: number, sha256: string): string {
	return createHmac("sha256", key).update(`${fileId}.${userId}.${expires}.${sha256}`).digest("base64url");
}

export function signLink(key: Buffer, file: { id: string; userId: string; sha256: string }, expires: number): string {
	return `${file.id}.${file.userId}.${expires}.${mac(key, file.id, file.userId, expires, file.sha256)}`;
}

/** The file and owner a token names, unchecked: where to route it. */
export function linkTarget(token: string): { fileId: string; userId: string } {
	const m = LINK_TOKEN.exec(token);
	if (!m) throw new LinkInvalidError();
	return { fileId: m[1]!, userId: m[2]! };
}

/** Checks `token` against the file as it is now; an altered, foreign or stale link is LINK_INVALID, an old one LINK_EXPIRED. */
export function checkLink(key: Buffer, token: string, file: { id: string; userId: string; sha256: string } | undefined, nowS: number): void {
	const m = LINK_TOKEN.exec(token);
	if (!m || !file) throw new LinkInvalidError();
	const expires = Number(m[3]);
	const expected = Buffer.from(mac(key, file.id, file.userId, expires, file.sha256));
	const given = Buffer.from(m[4]!);
	if (m[1] !== file.id || m[2] !== file.userId || given.length !== expected.length || !timingSafeEqual(given, expected)) throw new LinkInvalidError();
	if (expires <= nowS) throw new LinkExpiredError();
}
