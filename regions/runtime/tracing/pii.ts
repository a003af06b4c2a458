import type { Attributes, AttributeValue } from "@opentelemetry/api";

/**
 * What an exported attribute must never hold: an e-mail address, a phone number, an IP address,
 * a bearer or JSON web token. Attributes are set by the runtime from fixed fields (never from
 * params, meta or messages), so this is the last check, not the only one: a value that looks
 * like any of these is dropped whatever put it there.
 */
const LOOKS_PERSONAL = [
	/[^\s@]+@[^\s@]+\.[^\s@]+/, // e-mail
	/\+\d[\d ().-]{5,}\d/, // phone number in international form
	/(^|[^\d.])(\d{1,3}\.){3}\d{1,3}([^\d.]|$)/, // IPv4
	/(^|[^0-9a-f:])((([0-9a-f]{1,4}:){7}[0-9a-f]{1,4})|(([0-9a-f]{1,4}:)+:([0-9a-f]{1,4}(:|$))*))/i, // IPv6, full or with "::"
	/\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}/, // JWT (header.payload…)
	/\bbearer\s+\S+/i
];

/** Keys that name a personal value, whatever the value looks like. */
const PERSONAL_KEY = /(^|[._])(email|e_mail|phone|username|user_name|password|token|ip|client\.address|user_agent)([._]|$)/i;

/** A value that is nothing but a phone number, in any national form: 7 digits or more, and separators. */
function onlyPhoneNumber(value: string): boolean {
	return /^[\d ().+-]+$/.test(value) && value.replace(/\D/g, "").length >= 7;
}

function personalText(value: string): boolean {
	return onlyPhoneNumber(value) || LOOKS_PERSONAL.some(re => re.test(value));
}

export function looksPersonal(value: AttributeValue | undefined): boolean {
	if (typeof value === "string") return personalText(value);
	if (Array.isArray(value)) return value.some(v => typeof v === "string" && personalText(v));
	return false;
}

/** The attributes without any personal key or value. */
export function withoutPersonal(attributes: Attributes): Attributes {
	const out: Attributes = {};
	for (const [key, value] of Object.entries(attributes)) if (value !== undefined && !PERSONAL_KEY.test(key) && !looksPersonal(value)) out[key] = value;
	return out;
}
