import { describe, expect, it } from "vitest";
import { looksPersonal, withoutPersonal } from "../../../../../regions/runtime/tracing/pii.ts";

describe("the last check on exported attributes", () => {
	it("drops e-mail addresses, phone numbers, IP addresses and tokens, whatever their key", () => {
		for (const value of [
			"ann@example.com",
			"write for ann@example.com failed",
			"+49 89 123456",
			"0891234567",
			"(089) 123-4567",
			"203.0.113.7",
			"client 10.0.0.1 said",
			"2001:db8::1",
			"fe80:0:0:0:202:b3ff:fe1e:8329",
			"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
			"Bearer abc123"
		])
			expect(looksPersonal(value), value).toBe(true);
	});

	it("keeps what the runtime exports: routes, statements with placeholders, ids, regions, numbers", () => {
		for (const value of [
			"/api/v1/me/sessions/:sid",
			"update `sessions` set `ended_at` = ? where `user_id` = ? and `id` = ?",
			"3f6c1e0a-9b7d-4c2e-8a1f-5d6e7f809a1b",
			"01HZY3T5W8K9Q2M4N6P7R8S9TV",
			"eu-central",
			"auth-jwt/endSession",
			"route auth-jwt.endSession",
			"12:30"
		])
			expect(looksPersonal(value), value).toBe(false);
		expect(looksPersonal(4989123456)).toBe(false);
	});

	it("drops a key that names a personal value, and keeps the rest as they are", () => {
		expect(
			withoutPersonal({
				"http.route": "/api/v1/me",
				"user.email": "hidden anyway",
				"edgehome.username": "klara",
				"client.address": "x",
				"edgehome.token_kind": "refresh",
				"edgehome.route.hops": 1,
				"edgehome.note": "+4989123456"
			})
		).toEqual({ "http.route": "/api/v1/me", "edgehome.route.hops": 1 });
	});
});
