import { describe, expect, it } from "vitest";
import { commonRoutes } from "../../../mixins/gateway/common-routes.ts";
import { errorCodesOf } from "../../../mixins/gateway/openapi.ts";
import { RefreshConflictError } from "../../../services/auth-jwt/errors.ts";
import { COMMON_ROUTE_ERRORS } from "../../../services/gateway-errors.ts";
import { IdentityInUseError } from "../../../services/sv-user/errors.ts";

const route = (name: string) => commonRoutes(COMMON_ROUTE_ERRORS).find(r => r.name === name)!;

describe("the services' error catalogues, as the gateways document them", () => {
	it("lists at register every code sv-user's catalogue raises for a taken identity, with its status", () => {
		const taken = ["username", "email", "phone", "(other)"].map(kind => new IdentityInUseError(kind));
		expect(errorCodesOf(route("register")).get(409)).toEqual(taken.map(e => e.type).sort());
		expect(new Set(taken.map(e => e.code))).toEqual(new Set([409]));
	});

	it("lists at refresh auth-jwt's conflict under its own status", () => {
		const conflict = new RefreshConflictError();
		expect(errorCodesOf(route("refresh")).get(conflict.code)).toEqual([conflict.type]);
	});

	it("hands every route that calls a service its catalogue list, and the token check's answer to each", () => {
		for (const r of commonRoutes(COMMON_ROUTE_ERRORS).filter(r => r.name in COMMON_ROUTE_ERRORS))
			expect(errorCodesOf(r).get(503), r.name).toContain("AUTH_UNAVAILABLE");
	});
});
