import type { ServerResponse } from "node:http";
import { IncomingMessage, ServerResponse as NodeServerResponse } from "node:http";
import { Socket } from "node:net";

/** OWASP's set for API responses, on every answer (the 431 written on the socket too). */
export const SECURITY_HEADERS: readonly (readonly [string, string])[] = [
	["X-Content-Type-Options", "nosniff"],
	["X-Frame-Options", "DENY"],
	["Strict-Transport-Security", "max-age=31536000; includeSubDomains"],
	["Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"],
	["Cache-Control", "no-store"]
];

/** What only the HTML docs page adds. */
export const DOCUMENT_HEADERS = {
	"Referrer-Policy": "no-referrer",
	"Cross-Origin-Opener-Policy": "same-origin",
	"Cross-Origin-Resource-Policy": "same-origin"
};

/** The security headers as Node keeps a response's headers: by lower-case name, `[name, value]`. */
const BY_KEY = SECURITY_HEADERS.map(([name, value]) => [name.toLowerCase(), name, value] as const);

/**
 * A response's headers, starting with the security headers: what Node's `setHeader` builds, in an
 * object of one fixed shape rather than a dictionary (then its own later headers are faster too).
 * Nothing is inherited, as from Node's own (`{ __proto__: null }`): any name reads as set or not.
 */
class HeaderSlots {
	constructor() {
		// Fresh entries: Node's appendHeader changes an entry in place.
		for (const [key, name, value] of BY_KEY) (this as unknown as Record<string, [string, string]>)[key] = [name, value];
	}
}
Object.setPrototypeOf(HeaderSlots.prototype, null);
delete (HeaderSlots.prototype as { constructor?: unknown }).constructor;

function fill(slots: Record<symbol, unknown>, slot: symbol): void {
	slots[slot] = new HeaderSlots();
}

/**
 * Where Node keeps a response's headers (null until the first one), if this Node keeps them as
 * `fill` writes them: checked once on a probe response through Node's own getters.
 */
const OUT_HEADERS = (() => {
	const probe = new NodeServerResponse(new IncomingMessage(new Socket()));
	const slots = probe as unknown as Record<symbol, unknown>;
	const slot = Object.getOwnPropertySymbols(probe).find(s => s.description === "kOutHeaders");
	if (!slot || slots[slot] !== null) return undefined;
	fill(slots, slot);
	const same = SECURITY_HEADERS.every(([name, value]) => probe.getHeader(name) === value) && probe.getHeaderNames().length === SECURITY_HEADERS.length;
	return same ? slot : undefined;
})();

/**
 * Sets the security headers on a response, as `setHeader` would (a later `setHeader` of the same
 * name replaces one). Node checks each name and value and lower-cases the name on every call;
 * these are ours and constant: on a response with no header yet, they are stored as Node stores
 * them, without the five calls (a measurable share of a request).
 */
export function setSecurityHeaders(res: ServerResponse): void {
	const slots = res as unknown as Record<symbol, unknown>;
	if (OUT_HEADERS !== undefined && slots[OUT_HEADERS] === null) fill(slots, OUT_HEADERS);
	else for (const [name, value] of SECURITY_HEADERS) res.setHeader(name, value);
}
