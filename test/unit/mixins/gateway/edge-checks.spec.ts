import { describe, expect, it } from "vitest";
import { bearerToken } from "../../../../mixins/gateway/edge-checks.ts";

describe("bearerToken", () => {
	it("takes the scheme in any letter case, followed by one or more spaces (RFC 9110)", () => {
		for (const header of ["Bearer abc.def", "bearer abc.def", "BEARER abc.def", "bEaReR   abc.def"])
			expect({ header, token: bearerToken(header) }).toEqual({ header, token: "abc.def" });
	});

	it("refuses other schemes, a missing token and an oversized header", () => {
		for (const header of [undefined, "", "Bearer", "Bearer ", "Bearerabc", "Basic abc", "Bearer\tabc", `Bearer ${"a".repeat(5000)}`])
			expect({ header: header?.slice(0, 20), token: bearerToken(header) }).toEqual({ header: header?.slice(0, 20), token: undefined });
	});
});
