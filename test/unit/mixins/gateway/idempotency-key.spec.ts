import type { ServiceSchema } from "moleculer";
import { Errors } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { declared } from "../../../../mixins/gateway/declared-errors.ts";
import { toHttpError } from "../../../../mixins/gateway/errors.ts";
import { idempotencyKeyOf } from "../../../../mixins/gateway/idempotency-key.ts";
import type { OpenApiDocument } from "../../../../mixins/gateway/openapi.ts";
import { errorCodesOf, openApiDocument } from "../../../../mixins/gateway/openapi.ts";
import type { GatewayRequest, GatewayRoute } from "../../../../mixins/gateway/routes.ts";
import type { GatewaySettings } from "../../../../mixins/gateway/settings.ts";
import { gatewayMixin } from "../../../../mixins/gateway.mixin.ts";
import { COMMON_ROUTE_ERRORS } from "../../../../services/gateway-errors.ts";
import { expectError } from "../../../e2e/expect-error.ts";
import type { StartedServices } from "../../../harness/embedded.ts";
import { startServices } from "../../../harness/embedded.ts";
import { gatewayUrl, http } from "../../../harness/gateways.ts";

/** A refusal a client must tell apart: answered as raised where declared so, a validation failure elsewhere. */
const refusal = () => new Errors.MoleculerClientError("available USD balance 0 is less than 5", 422, "INSUFFICIENT_FUNDS");
const gone = () => new Errors.MoleculerClientError("no user nobody", 404, "RECIPIENT_NOT_FOUND");

let served = 0;
const ROUTES: GatewayRoute[] = [
	{
		method: "POST",
		path: "/api/v1/echo",
		name: "echo",
		summary: "Answers the key it was given",
		tag: "meta",
		auth: false,
		idempotencyKey: true,
		status: 201,
		params: { $$strict: true, n: { type: "number" } },
		handler(ctx) {
			served++;
			return { key: ctx.locals.idempotencyKey };
		}
	},
	{
		method: "POST",
		path: "/api/v1/refused",
		name: "refused",
		summary: "Refuses as raised",
		tag: "meta",
		auth: false,
		status: 200,
		errors: [declared(refusal(), { asRaised: true }), declared(gone(), { asRaised: true })],
		params: { $$strict: true, what: { type: "enum", values: ["funds", "recipient"] } },
		handler(_ctx, params: { what: string }) {
			throw params.what === "funds" ? refusal() : gone();
		}
	},
	{
		method: "POST",
		path: "/api/v1/mapped",
		name: "mapped",
		summary: "Refuses, declaring it the usual way",
		tag: "meta",
		auth: false,
		status: 200,
		errors: [declared(refusal()), declared(gone())],
		params: { $$strict: true, what: { type: "enum", values: ["funds", "recipient"] } },
		handler(_ctx, params: { what: string }) {
			throw params.what === "funds" ? refusal() : gone();
		}
	}
];

const gateway: ServiceSchema<Partial<GatewaySettings>> = {
	name: "api-www",
	mixins: [gatewayMixin({ client: "www", commonErrors: COMMON_ROUTE_ERRORS, routes: ROUTES })],
	settings: { port: 0 }
};

let started: StartedServices;
let base: string;

beforeAll(async () => {
	started = await startServices([gateway]);
	base = gatewayUrl(started.broker, "api-www");
});

afterAll(() => started?.stop());

const echo = (headers: Record<string, string> | [string, string][], body: unknown = { n: 1 }) =>
	fetch(`${base}/api/v1/echo`, {
		method: "POST",
		headers: [["content-type", "application/json"], ...(Array.isArray(headers) ? headers : Object.entries(headers))],
		body: JSON.stringify(body)
	});

describe("idempotencyKeyOf", () => {
	const req = (headers: Record<string, string | string[]>) => ({ headers }) as unknown as GatewayRequest;

	it("takes 1 to 255 visible ASCII characters as they are", () => {
		for (const key of ["k", "0f7c2d3e-5b1a-4c8e-9d6f-1a2b3c4d5e6f", "order:42/attempt#1", "!~", "x".repeat(255)])
			expect(idempotencyKeyOf(req({ "idempotency-key": key }))).toBe(key);
	});

	it("refuses a missing key with IDEMPOTENCY_KEY_MISSING and a malformed one with IDEMPOTENCY_KEY_INVALID, both 400", () => {
		expect(() => idempotencyKeyOf(req({}))).toThrow(expect.objectContaining({ code: 400, type: "IDEMPOTENCY_KEY_MISSING" }));
		for (const key of ["", "a b", "a, b", "tab\there", "é", "ключ", "x".repeat(256), ["a", "b"]])
			expect(() => idempotencyKeyOf(req({ "idempotency-key": key })), JSON.stringify(key)).toThrow(
				expect.objectContaining({ code: 400, type: "IDEMPOTENCY_KEY_INVALID" })
			);
	});
});

describe("a route with idempotencyKey, over HTTP", () => {
	it("hands the key to the handler", async () => {
		const res = await echo({ "Idempotency-Key": "order-42" });
		expect(res.status).toBe(201);
		expect(await res.json()).toEqual({ key: "order-42" });
	});

	it("answers 400 for a missing or malformed key before the body is judged or the handler runs", async () => {
		const before = served;
		const cases: [Record<string, string> | [string, string][], string][] = [
			[{}, "IDEMPOTENCY_KEY_MISSING"],
			[{ "Idempotency-Key": "two words" }, "IDEMPOTENCY_KEY_INVALID"],
			[{ "Idempotency-Key": "x".repeat(256) }, "IDEMPOTENCY_KEY_INVALID"],
			[{ "Idempotency-Key": "caf\u00e9" }, "IDEMPOTENCY_KEY_INVALID"],
			[
				[
					["Idempotency-Key", "first"],
					["Idempotency-Key", "second"]
				],
				"IDEMPOTENCY_KEY_INVALID"
			]
		];
		for (const [headers, code] of cases) {
			const res = await echo(headers);
			const text = await res.text();
			expectError({ status: res.status, headers: res.headers, body: JSON.parse(text), text }, 400, code);
		}
		expect(((await (await echo({}, { n: "one" })).json()) as { error: { code: string } }).error.code).toBe("IDEMPOTENCY_KEY_MISSING");
		// A valid key with an invalid body is the body's failure.
		const invalid = await echo({ "Idempotency-Key": "k" }, { n: "one" });
		expect({ status: invalid.status, code: ((await invalid.json()) as { error: { code: string } }).error.code }).toEqual({
			status: 400,
			code: "VALIDATION_FAILED"
		});
		expect(served).toBe(before);
	});
});

describe("errors declared as raised", () => {
	it("keep their status and code where the route declares them so, and only there", async () => {
		expectError(await http(base, "POST", "/api/v1/refused", { body: { what: "funds" } }), 422, "INSUFFICIENT_FUNDS");
		expectError(await http(base, "POST", "/api/v1/refused", { body: { what: "recipient" } }), 404, "RECIPIENT_NOT_FOUND");
		expectError(await http(base, "POST", "/api/v1/mapped", { body: { what: "funds" } }), 400, "VALIDATION_FAILED");
		expectError(await http(base, "POST", "/api/v1/mapped", { body: { what: "recipient" } }), 404, "NOT_FOUND");
	});

	it("are only client errors, and only once the route ran", () => {
		expect(() => declared(new Errors.MoleculerError("down", 503, "STORAGE_DOWN"), { asRaised: true })).toThrow(/only a client error/);
		const asRaised = [declared(refusal(), { asRaised: true })];
		expect(toHttpError(refusal(), true, asRaised)).toEqual({ status: 422, code: "INSUFFICIENT_FUNDS", message: refusal().message });
		expect(toHttpError(refusal(), false, asRaised)).toMatchObject({ status: 400, code: "VALIDATION_FAILED" });
		// The same code raised with another status is not the one declared.
		expect(toHttpError(new Errors.MoleculerClientError("x", 409, "INSUFFICIENT_FUNDS"), true, asRaised)).toMatchObject({ status: 409 });
	});
});

describe("the OpenAPI document", () => {
	let doc: OpenApiDocument;
	beforeAll(async () => {
		doc = (await http(base, "GET", "/api/v1/openapi.json")).body;
	});

	it("lists the header as a required parameter, with what a missing or malformed one gets", () => {
		const op = doc.paths["/api/v1/echo"]!.post!;
		expect(op.parameters).toEqual([
			{
				name: "Idempotency-Key",
				in: "header",
				required: true,
				description: expect.any(String),
				schema: { type: "string", minLength: 1, maxLength: 255, pattern: "^[\\x21-\\x7e]{1,255}$" }
			}
		]);
		expect(op.responses["400"]!.description).toContain("`IDEMPOTENCY_KEY_MISSING`");
		expect(errorCodesOf(ROUTES[0]!).get(400)).toEqual(["BAD_REQUEST", "IDEMPOTENCY_KEY_INVALID", "IDEMPOTENCY_KEY_MISSING", "VALIDATION_FAILED"]);
		expect(doc.paths["/api/v1/refused"]!.post!.parameters).toBeUndefined();
	});

	it("documents errors declared as raised under their own status and code", () => {
		expect(errorCodesOf(ROUTES[1]!).get(422)).toEqual(["INSUFFICIENT_FUNDS"]);
		expect(errorCodesOf(ROUTES[1]!).get(404)).toEqual(["RECIPIENT_NOT_FOUND"]);
		expect(errorCodesOf(ROUTES[2]!).get(422)).toBeUndefined();
		expect(errorCodesOf(ROUTES[2]!).get(404)).toEqual(["NOT_FOUND"]);
		expect(doc.paths["/api/v1/refused"]!.post!.responses["422"]!.description).toContain("`INSUFFICIENT_FUNDS`");
		// The document is built from the same table as the unit-level one.
		expect(
			openApiDocument({ title: "t", version: "1", routes: ROUTES, paramsOf: name => ROUTES.find(r => r.name === name)?.params }).paths["/api/v1/echo"]
		).toEqual(doc.paths["/api/v1/echo"]);
	});
});
