import { Errors } from "moleculer";
import { describe, expect, it } from "vitest";
import { toHttpError } from "../../../../mixins/gateway/errors.ts";
import { OutcomeUnknownError, ResidencyViolationError } from "../../../../regions/errors.ts";

describe("toHttpError", () => {
	it("keeps our client errors' codes and messages", () => {
		expect(toHttpError(new Errors.MoleculerClientError("username is already taken", 409, "USERNAME_TAKEN"), true)).toEqual({
			status: 409,
			code: "USERNAME_TAKEN",
			message: "username is already taken"
		});
		expect(toHttpError(new Errors.MoleculerClientError("too many", 429, "RATE_LIMITED", { retryAfter: 42 }), true)).toMatchObject({
			status: 429,
			code: "RATE_LIMITED",
			retryAfter: 42
		});
		expect(toHttpError(new Errors.MoleculerClientError("token expired", 401, "TOKEN_EXPIRED"), true)).toMatchObject({
			status: 401,
			code: "UNAUTHORIZED",
			message: "token expired"
		});
	});

	it("turns validation into 400 with field details but never the rejected values", () => {
		const e = toHttpError(
			new Errors.ValidationError("Parameters validation error!", "VALIDATION_ERROR", [{ field: "password", message: "too short", actual: "hunter2" }]),
			true
		);
		expect(e).toEqual({ status: 400, code: "VALIDATION_FAILED", message: "request is not valid", details: [{ field: "password", message: "too short" }] });
	});

	it("hides internal failures: service and node names, timeouts, unknown errors", () => {
		expect(toHttpError(new Errors.ServiceNotFoundError({ action: "sv-user.get", nodeID: "cn-east-all-1" }), true)).toEqual({
			status: 502,
			code: "UPSTREAM_UNAVAILABLE",
			message: "a service needed for this request is not available"
		});
		expect(toHttpError(new Errors.ServiceNotFoundError({ action: "sv-user.get" }), false)).toMatchObject({ status: 404, code: "NOT_FOUND" });
		expect(toHttpError(new Errors.RequestTimeoutError({ action: "sv-user.get", nodeID: "n1" }), true)).toMatchObject({ status: 504, code: "UPSTREAM_TIMEOUT" });
		expect(toHttpError(new TypeError("cannot read properties of undefined (reading 'x')"), true)).toEqual({
			status: 500,
			code: "INTERNAL",
			message: "internal error"
		});
		expect(toHttpError(new Errors.MoleculerError("db exploded at /srv/app.ts:12", 500, "DB"), true)).toEqual({
			status: 500,
			code: "INTERNAL",
			message: "internal error"
		});
	});

	it("says a write's outcome is unknown, without naming the action or the user", () => {
		const e = toHttpError(
			new OutcomeUnknownError(
				"01m8r1gtmffsxwx66ek108mkg6",
				"sv-user.update",
				"Request is timed out when call 'sv-user.update' action on 'eu-central-all-1' node."
			),
			true
		);
		expect(e).toEqual({
			status: 504,
			code: "OUTCOME_UNKNOWN",
			message: "the request may or may not have been applied; check before repeating it",
			retryAfter: 1
		});
	});

	it("gives retryable 503s a Retry-After", () => {
		expect(toHttpError(new Errors.MoleculerError("region cn-east is unavailable", 503, "REGION_UNAVAILABLE", { retryAfter: 5 }), true)).toMatchObject({
			status: 503,
			code: "REGION_UNAVAILABLE",
			retryAfter: 5
		});
		expect(toHttpError(new Errors.MoleculerError("moving", 503, "USER_MOVING"), true)).toMatchObject({ status: 503, code: "USER_MOVING", retryAfter: 1 });
	});

	it("maps body-parser's errors", () => {
		expect(toHttpError(Object.assign(new Error("request entity too large"), { status: 413, type: "entity.too.large" }), false)).toMatchObject({
			status: 413,
			code: "PAYLOAD_TOO_LARGE"
		});
		expect(toHttpError(Object.assign(new Error("Unexpected token"), { status: 400, type: "entity.parse.failed" }), false)).toMatchObject({
			status: 400,
			code: "VALIDATION_FAILED"
		});
	});

	it("keeps a service's own 403 code and message; FORBIDDEN only for a 403 without a code", () => {
		expect(toHttpError(new ResidencyViolationError("u1", "eu-central", "cn-east"), true)).toMatchObject({
			status: 403,
			code: "RESIDENCY_VIOLATION",
			message: expect.stringMatching(/pinned/)
		});
		expect(toHttpError(new Errors.MoleculerClientError("not allowed", 403, "FORBIDDEN"), true)).toEqual({
			status: 403,
			code: "FORBIDDEN",
			message: "not allowed"
		});
		expect(toHttpError(Object.assign(new Error("nope"), { code: 403 }), true)).toEqual({ status: 403, code: "FORBIDDEN", message: "not allowed" });
	});

	it("tells a missing route from a handler's own 404", () => {
		expect(toHttpError(new Errors.MoleculerClientError("Not found", 404, "NOT_FOUND"), false)).toMatchObject({
			status: 404,
			code: "NOT_FOUND",
			message: "no such route"
		});
		expect(toHttpError(new Errors.MoleculerClientError("no such session", 404, "NOT_FOUND"), true)).toMatchObject({
			status: 404,
			code: "NOT_FOUND",
			message: "no such session"
		});
	});

	it("answers a body it cannot read with 400 and an encoding it does not decode with 415 naming gzip", () => {
		// As moleculer-web hands body-parser's errors on: message, code (zlib's is a string), type.
		expect(toHttpError(new Errors.MoleculerError("incorrect header check", "Z_DATA_ERROR" as unknown as number), false)).toMatchObject({
			status: 400,
			code: "BAD_REQUEST"
		});
		expect(toHttpError(new Errors.MoleculerError("request aborted", 400, "request.aborted"), false)).toMatchObject({ status: 400, code: "BAD_REQUEST" });
		expect(toHttpError(new Errors.MoleculerError("unsupported", 415, "encoding.unsupported"), false)).toMatchObject({
			status: 415,
			code: "UNSUPPORTED_MEDIA_TYPE",
			headers: { "Accept-Encoding": "gzip" }
		});
	});

	it("answers 405 with the path's methods in Allow", () => {
		expect(toHttpError(new Errors.MoleculerClientError("x", 405, "METHOD_NOT_ALLOWED", { allow: "GET, HEAD" }), false)).toMatchObject({
			status: 405,
			code: "METHOD_NOT_ALLOWED",
			headers: { Allow: "GET, HEAD" }
		});
	});
});
