import { describe, expect, it } from "vitest";
import { MAX_TEXT, REDACTED, redactText, redactValue } from "../../../../services/sv-log/redaction.ts";

describe("audit redaction", () => {
	it("drops the value of any field whose name says password, token, secret, key, e-mail or phone, at any depth", () => {
		const out = redactValue({
			password: "hunter2",
			newPassword: "x",
			refresh_token: "abc",
			accessToken: "abc",
			clientSecret: "s",
			apiKey: "k",
			"private-key": "k",
			Authorization: "Bearer abc",
			email: "ann@example.com",
			phoneNumber: "+8613800138000",
			mobile: "13800138000",
			nested: { list: [{ otp: "123456", amount: "2500" }] },
			reason: "refund",
			missing: null
		});
		expect(out).toEqual({
			password: REDACTED,
			newPassword: REDACTED,
			refresh_token: REDACTED,
			accessToken: REDACTED,
			clientSecret: REDACTED,
			apiKey: REDACTED,
			"private-key": REDACTED,
			Authorization: REDACTED,
			email: REDACTED,
			phoneNumber: REDACTED,
			mobile: REDACTED,
			nested: { list: [{ otp: REDACTED, amount: "2500" }] },
			reason: "refund",
			missing: null
		});
	});

	it("cuts e-mail addresses, phone numbers, JWTs, bearer credentials, refresh tokens and `password=` out of any text", () => {
		const jwt = `eyJhbGciOiJFUzI1NiJ9.${"eyJzdWIiOiIxIn0"}.${"s".repeat(40)}`;
		const refresh = `${"a1".repeat(13)}.${"B".repeat(43)}`;
		const cases: [string, string][] = [
			["mail ann.lee+x@mail.example.co.uk now", `mail ${REDACTED} now`],
			["call +86 138 0013 8000 please", `call ${REDACTED} please`],
			["call (555) 123-4567", `call ${REDACTED}`],
			[`token ${jwt} seen`, `token ${REDACTED} seen`],
			["Authorization: Bearer abcdefghijklmnop", `Authorization: ${REDACTED}`],
			[`refresh ${refresh}`, `refresh ${REDACTED}`],
			["login with password=hunter2 failed", `login with ${REDACTED} failed`],
			["-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----", REDACTED]
		];
		for (const [text, expected] of cases) expect(redactText(text), text).toBe(expected);
	});

	it("keeps what is no secret: amounts, ids, dates, client types", () => {
		for (const text of ["2500", "1000000000000000", "01JABCDEFGHJKMNPQRSTVWXYZ0", "2025-01-31T12:00:00Z", "www", "CNY"]) expect(redactText(text)).toBe(text);
	});

	it("bounds what it keeps: long text is cut, deep nesting replaced, non-JSON values dropped", () => {
		expect(redactText("x".repeat(MAX_TEXT + 50))).toHaveLength(MAX_TEXT + 1);
		expect(redactValue({ a: { b: { c: { d: { e: 1 } } } } })).toEqual({ a: { b: { c: { d: REDACTED } } } });
		expect(redactValue({ f: () => 1, n: Number.NaN, b: 10n })).toEqual({ n: null, b: "10" });
	});
});
