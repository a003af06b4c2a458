import { describe, expect, it } from "vitest";
import { isUserId, newUserId } from "../../../../regions/directory/entries.ts";

describe("user ids", () => {
	it("are 26 lower-case base32 characters that sort by creation time", () => {
		const earlier = newUserId(Date.UTC(2026, 0, 1));
		const later = newUserId(Date.UTC(2026, 0, 2));
		expect(isUserId(earlier)).toBe(true);
		expect(earlier < later).toBe(true);
	});

	it("do not collide", () => {
		const ids = new Set(Array.from({ length: 10_000 }, () => newUserId(1_800_000_000_000)));
		expect(ids.size).toBe(10_000);
	});

	it("reject anything else as a user id", () => {
		for (const bad of ["", "A".repeat(26), "0".repeat(25), "../../../../etc/passwd_____", 42, null]) expect(isUserId(bad)).toBe(false);
	});
});
