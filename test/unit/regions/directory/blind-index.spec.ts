import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { blindIndex } from "../../../../regions/directory/blind-index.ts";

const key = randomBytes(32);

describe("blind index", () => {
	it("is stable across case and surrounding space for e-mail and username", () => {
		expect(blindIndex(key, "email", " Ann@Example.com ")).toBe(blindIndex(key, "email", "ann@example.com"));
		expect(blindIndex(key, "username", "Ann")).toBe(blindIndex(key, "username", "ann"));
	});

	it("is the same for every Unicode spelling of one identity, compatibility forms included (NFKC)", () => {
		expect(blindIndex(key, "email", "rene\u0301@example.fr")).toBe(blindIndex(key, "email", "ren\u00e9@example.fr"));
		expect(blindIndex(key, "email", "\uff4a\uff4f\uff59@example.jp")).toBe(blindIndex(key, "email", "JOY@example.jp"));
		expect(blindIndex(key, "phone", "\uff0b\uff16\uff15\uff19\uff11\uff12\uff13")).toBe(blindIndex(key, "phone", "+659123"));
	});

	it("never contains the value and differs by kind and by key", () => {
		const b = blindIndex(key, "email", "ann@example.com");
		expect(b).not.toContain("ann");
		expect(b).toMatch(/^[A-Za-z0-9_-]{43}$/);
		expect(blindIndex(key, "username", "ann@example.com")).not.toBe(b);
		expect(blindIndex(randomBytes(32), "email", "ann@example.com")).not.toBe(b);
	});

	it("refuses a short key", () => {
		expect(() => blindIndex(randomBytes(16), "email", "a@b.c")).toThrow(/at least 32 bytes/);
	});
});
