/**
 * What no audit record keeps, whichever service sent it: passwords, tokens, secrets, keys,
 * e-mail addresses and phone numbers. A value goes when its field's name says it is one of these;
 * any text that looks like one is cut out of every string, wherever it stands. What is cut is
 * replaced by REDACTED, so a reader sees that something was there.
 */

export const REDACTED = "[redacted]";

/** Field names, lower case with `-` and `_` dropped, that hold something no record keeps. */
const SECRET_NAMES = [
	"password",
	"passwd",
	"pwd",
	"secret",
	"token",
	"authorization",
	"cookie",
	"apikey",
	"privatekey",
	"credential",
	"signature",
	"otp",
	"email",
	"phone",
	"mobile",
	"telephone"
];

/** Text patterns cut out of any string. */
const SECRET_TEXT: readonly RegExp[] = [
	// A JWT (three base64url parts, the first a JSON header).
	/eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g,
	// A bearer or basic credential.
	/\b(?:Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi,
	// A PEM key or certificate block.
	/-----BEGIN [A-Z ]+-----[\s\S]*?(?:-----END [A-Z ]+-----|$)/g,
	// `password=…`, `token: …` and the like inside a longer text.
	/\b(?:pass(?:word|wd)?|pwd|secret|token|api[-_]?key)\s*[=:]\s*\S+/gi,
	// An e-mail address.
	/[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g,
	// A phone number: international form, or digits grouped by separators (plain digit runs are amounts and ids).
	/\+[0-9][0-9 ().-]{5,18}[0-9]/g,
	/(?<![0-9A-Za-z-])\(?[0-9]{2,4}\)?[ .-][0-9]{3,4}[ .-][0-9]{3,4}(?![0-9A-Za-z-])/g,
	// A refresh token (services/auth-jwt/session-store.ts): `<user id>.<43 characters of secret>`.
	/\b[0-9a-z]{26}\.[A-Za-z0-9_-]{43}\b/g
];

/** Deepest nesting a detail keeps; below it, values are replaced. */
const MAX_DEPTH = 4;
/** Longest string a record keeps, in characters. */
export const MAX_TEXT = 500;

/** Any of SECRET_NAMES inside a name: one scan instead of one per name (every detail key passes here). */
const SECRET_NAME = new RegExp(SECRET_NAMES.join("|"));

export function isSecretName(name: string): boolean {
	return SECRET_NAME.test(name.toLowerCase().replace(/[-_]/g, ""));
}

/** Text no pattern can match (a word, an id, a UUID): most of what records hold, let through without the patterns' cost. */
const PLAIN = /^(?:[A-Za-z0-9_]{0,64}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

export function redactText(text: string): string {
	if (PLAIN.test(text)) return text;
	let out = text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT)}…` : text;
	for (const pattern of SECRET_TEXT) out = out.replace(pattern, REDACTED);
	return out;
}

/** A copy of `value` with every secret field and text replaced; functions, symbols and the like are dropped. */
export function redactValue(value: unknown, depth = 0): unknown {
	if (typeof value === "string") return redactText(value);
	if (typeof value === "number") return Number.isFinite(value) ? value : null;
	if (typeof value === "boolean" || value === null) return value;
	if (typeof value === "bigint") return value.toString();
	if (typeof value !== "object") return undefined;
	if (depth >= MAX_DEPTH) return REDACTED;
	if (Array.isArray(value)) return value.map(v => redactValue(v, depth + 1) ?? null);
	const out: Record<string, unknown> = {};
	for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
		const safeKey = redactText(key);
		const kept = isSecretName(key) ? (v === null || v === undefined ? v : REDACTED) : redactValue(v, depth + 1);
		if (kept !== undefined) out[safeKey] = kept;
	}
	return out;
}
