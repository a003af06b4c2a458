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
