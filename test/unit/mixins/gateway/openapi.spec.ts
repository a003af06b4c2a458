import { describe, expect, it } from "vitest";
import type { OpenApiDocument, OpenApiOperation } from "../../../../mixins/gateway/openapi.ts";
import { fastestToJsonSchema, openApiDocument } from "../../../../mixins/gateway/openapi.ts";
import type { RouteDoc } from "../../../../mixins/gateway/routes.ts";

describe("fastestToJsonSchema", () => {
	it("reads shorthand strings as fastest-validator does", () => {
		expect(fastestToJsonSchema("string")).toEqual({ type: "string" });
		expect(fastestToJsonSchema("string|min:3|max:20")).toEqual({ type: "string", minLength: 3, maxLength: 20 });
		expect(fastestToJsonSchema("number|integer|min:0|optional")).toEqual({ type: "integer", minimum: 0 });
		expect(fastestToJsonSchema("boolean|nullable")).toEqual({ type: ["boolean", "null"] });
		expect(fastestToJsonSchema("string[]")).toEqual({ type: "array", items: { type: "string" } });
	});

	it("converts string rules", () => {
		expect(fastestToJsonSchema({ type: "string", min: 1, max: 128 })).toEqual({ type: "string", minLength: 1, maxLength: 128 });
		expect(fastestToJsonSchema({ type: "string", pattern: /^[0-9a-z]{26}$/, messages: { stringPattern: "bad id" } })).toEqual({
			type: "string",
			pattern: "^[0-9a-z]{26}$"
		});
		expect(fastestToJsonSchema({ type: "string", pattern: "^[A-Z]{2}$" })).toEqual({ type: "string", pattern: "^[A-Z]{2}$" });
		expect(fastestToJsonSchema({ type: "string", enum: ["a", "b"] })).toEqual({ type: "string", enum: ["a", "b"] });
		expect(fastestToJsonSchema({ type: "string", length: 6 })).toEqual({ type: "string", minLength: 6, maxLength: 6 });
		expect(fastestToJsonSchema({ type: "string", empty: false })).toEqual({ type: "string", minLength: 1 });
	});

	it("converts e-mail rules", () => {
		expect(fastestToJsonSchema({ type: "email", max: 254 })).toEqual({ type: "string", format: "email", maxLength: 254 });
	});

	it("converts number rules, ignoring convert", () => {
		expect(fastestToJsonSchema({ type: "number", integer: true, min: 1, max: 100, default: 20, convert: true })).toEqual({
			type: "integer",
			minimum: 1,
			maximum: 100,
			default: 20
		});
		expect(fastestToJsonSchema({ type: "number", positive: true })).toEqual({ type: "number", exclusiveMinimum: 0 });
		expect(fastestToJsonSchema({ type: "number", min: 0.5 })).toEqual({ type: "number", minimum: 0.5 });
	});

	it("converts boolean, enum, equal and any", () => {
		expect(fastestToJsonSchema({ type: "boolean", convert: true })).toEqual({ type: "boolean" });
		expect(fastestToJsonSchema({ type: "enum", values: ["add", "remove"] })).toEqual({ enum: ["add", "remove"] });
		expect(fastestToJsonSchema({ type: "equal", value: true, strict: true })).toEqual({ const: true });
		expect(fastestToJsonSchema({ type: "any" })).toEqual({});
	});

	it("converts objects with required fields and strictness", () => {
		const rule = {
			type: "object",
			strict: true,
			props: {
				kind: { type: "enum", values: ["email", "phone"] },
				value: "string|min:1",
				note: { type: "string", optional: true },
				n: { type: "number", default: 1 }
			}
		};
		expect(fastestToJsonSchema(rule)).toEqual({
			type: "object",
			properties: {
				kind: { enum: ["email", "phone"] },
				value: { type: "string", minLength: 1 },
				note: { type: "string" },
				n: { type: "number", default: 1 }
			},
			required: ["kind", "value"],
			additionalProperties: false
		});
		expect(fastestToJsonSchema({ type: "object", props: { a: "string" } })).not.toHaveProperty("additionalProperties");
		// "remove" strips unknown keys instead of refusing them: the object stays open.
		expect(fastestToJsonSchema({ type: "object", strict: "remove", props: {} })).not.toHaveProperty("additionalProperties");
	});

	it("reads a bare field map as an action's params, $$strict closing it and $$ keys not being properties", () => {
		expect(fastestToJsonSchema({ $$strict: true, $$async: true, login: "string|min:3" })).toEqual({
			type: "object",
			properties: { login: { type: "string", minLength: 3 } },
			required: ["login"],
			additionalProperties: false
		});
		expect(fastestToJsonSchema({ $$type: "object|optional", a: "number" })).toEqual({
			type: "object",
			properties: { a: { type: "number" } },
			required: ["a"]
		});
	});

	it("converts arrays", () => {
		expect(fastestToJsonSchema({ type: "array", min: 1, max: 3, items: { type: "string" }, unique: true })).toEqual({
			type: "array",
			minItems: 1,
			maxItems: 3,
			items: { type: "string" },
			uniqueItems: true
		});
		expect(fastestToJsonSchema({ type: "array" })).toEqual({ type: "array" });
	});

	it("adds null for nullable rules, keeping enum and const consistent", () => {
		expect(fastestToJsonSchema({ type: "string", max: 32, nullable: true, optional: true })).toEqual({ type: ["string", "null"], maxLength: 32 });
		expect(fastestToJsonSchema({ type: "enum", values: ["a"], nullable: true })).toEqual({ enum: ["a", null] });
		expect(fastestToJsonSchema({ type: "string", enum: ["a"], nullable: true })).toEqual({ type: ["string", "null"], enum: ["a", null] });
		expect(fastestToJsonSchema({ type: "equal", value: 1, nullable: true })).toEqual({ enum: [1, null] });
	});

	it("keeps JSON defaults and drops function defaults", () => {
		expect(fastestToJsonSchema({ type: "string", default: "region" })).toEqual({ type: "string", default: "region" });
		expect(fastestToJsonSchema({ type: "number", default: () => Date.now() })).toEqual({ type: "number" });
	});

	it("turns alternatives into anyOf", () => {
		expect(fastestToJsonSchema(["string", { type: "number" }])).toEqual({ anyOf: [{ type: "string" }, { type: "number" }] });
	});

	it("describes unknown types instead of throwing", () => {
		expect(fastestToJsonSchema({ type: "luhn" })).toEqual({ description: expect.stringContaining("luhn") });
		expect(fastestToJsonSchema("objectID")).toEqual({ description: expect.stringContaining("objectID") });
		expect(fastestToJsonSchema({ type: "enum" })).toEqual({ description: expect.stringContaining("enum") });
		expect(fastestToJsonSchema([])).toEqual({ description: expect.stringContaining("multi") });
		expect(() => fastestToJsonSchema(undefined)).not.toThrow();
		expect(() => fastestToJsonSchema(42)).not.toThrow();
	});
});

const userSchema = { type: "object", properties: { id: { type: "string" }, email: { type: "string" } } };

const routes: RouteDoc[] = [
	{
		method: "GET",
		path: "/api/v1/admin/users",
		name: "listUsers",
		summary: "List users",
		tag: "users",
		auth: true,
		permission: { resource: "users", action: "read" },
		status: 200,
		response: { type: "array", items: userSchema }
	},
	{
		method: "POST",
		path: "/api/v1/admin/users",
		name: "createUser",
		summary: "Create a user",
		tag: "users",
		auth: true,
		permission: { resource: "users", action: "create" },
		status: 201,
		response: userSchema
	},
	{
		method: "PATCH",
		path: "/api/v1/admin/users/:id",
		name: "updateUser",
		summary: "Change a user",
		tag: "users",
		auth: true,
		permission: { resource: "users", action: "update" },
		status: 200,
		response: userSchema
	},
	{
		method: "DELETE",
		path: "/api/v1/admin/users/:id",
		name: "deleteUser",
		summary: "Delete a user",
		tag: "users",
		auth: true,
		permission: { resource: "users", action: "delete" },
		status: 204
	},
	{ method: "POST", path: "/api/v1/auth/login", name: "login", summary: "Log in", tag: "auth", auth: false, status: 200, response: { type: "object" } },
	{ method: "POST", path: "/api/v1/auth/logout", name: "logout", summary: "End this session", tag: "auth", auth: true, status: 204 },
	{
		method: "GET",
		path: "/api/v1/regions/:region/users/:id",
		name: "regionUser",
		summary: "A user as one region sees it",
		tag: "admin",
		auth: true,
		status: 200
	}
];

const id = { type: "string", pattern: /^[0-9a-z]{26}$/ };
const params: Record<string, Record<string, unknown>> = {
	listUsers: {
		$$strict: true,
		limit: { type: "number", integer: true, min: 1, max: 100, default: 20, convert: true },
		q: "string|optional|max:64",
		role: { type: "enum", values: ["admin", "user"] },
		filter: { type: "object", optional: true, props: { country: "string" } }
	},
	createUser: {
		$$strict: true,
		email: { type: "email", max: 254 },
		name: "string|min:1|max:80",
		role: { type: "enum", values: ["admin", "user"], default: "user" }
	},
	updateUser: { $$strict: true, id, email: { type: "email", optional: true }, phone: { type: "string", max: 32, optional: true, nullable: true } },
	deleteUser: { $$strict: true, id },
	login: { login: "string|min:3", password: "string|min:1" },
	logout: { $$strict: true },
	regionUser: { $$strict: true, region: "string", id }
};

function build(extra: Partial<Parameters<typeof openApiDocument>[0]> = {}): OpenApiDocument {
	return openApiDocument({
		title: "edgehome admin API",
		version: "1.0.0",
		description: "Admin gateway",
		servers: [{ url: "https://eu.example.test" }],
		routes,
		paramsOf: name => params[name],
		...extra
	});
}

function op(doc: OpenApiDocument, path: string, method: "get" | "post" | "put" | "patch" | "delete"): OpenApiOperation {
	const found = doc.paths[path]?.[method];
	if (!found) throw new Error(`no ${method} ${path}`);
	return found;
}

/** The component a `$ref` points to, following it through the document. */
function resolve(doc: OpenApiDocument, ref: string): unknown {
	expect(ref.startsWith("#/")).toBe(true);
	return ref
		.slice(2)
		.split("/")
		.reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], doc);
}

/** The error codes an operation documents for one status. */
function codesOf(operation: OpenApiOperation, status: number): unknown {
	const schema = operation.responses[String(status)]?.content?.["application/json"]?.schema as
		| { allOf?: { properties?: { error: { properties: { code: { enum: string[] } } } } }[] }
		| undefined;
	return schema?.allOf?.[1]?.properties?.error.properties.code.enum;
}

describe("openApiDocument", () => {
	const doc = build();

	it("is an OpenAPI 3.1.0 document with info, servers, sorted unique tags and the bearer scheme", () => {
		expect(doc.openapi).toBe("3.1.0");
		expect(doc.info).toEqual({ title: "edgehome admin API", version: "1.0.0", description: "Admin gateway" });
		expect(doc.servers).toEqual([{ url: "https://eu.example.test" }]);
		expect(doc.tags).toEqual([{ name: "admin", description: expect.any(String) }, { name: "auth", description: expect.any(String) }, { name: "users" }]);
		expect(doc.components.securitySchemes.bearer).toEqual({ type: "http", scheme: "bearer", bearerFormat: "JWT" });
		expect(JSON.parse(JSON.stringify(doc))).toEqual(doc);
	});

	it("holds together structurally: path templates declared, operationIds unique, every $ref resolving", () => {
		const ids: string[] = [];
		for (const [path, item] of Object.entries(doc.paths)) {
			expect(path.startsWith("/")).toBe(true);
			expect(path).not.toContain(":");
			const templated = [...path.matchAll(/\{([^}]+)\}/g)].map(m => m[1]);
			for (const operation of Object.values(item)) {
				ids.push(operation.operationId);
				const inPath = (operation.parameters ?? []).filter(p => p.in === "path");
				expect(inPath.map(p => p.name).sort()).toEqual([...templated].sort());
				for (const p of inPath) expect(p.required).toBe(true);
				const names = (operation.parameters ?? []).map(p => `${p.in}:${p.name}`);
				expect(new Set(names).size).toBe(names.length);
				expect(operation.tags.every(t => doc.tags.some(d => d.name === t))).toBe(true);
				expect(Object.keys(operation.responses).length).toBeGreaterThan(0);
				for (const [status, response] of Object.entries(operation.responses)) {
					expect(status).toMatch(/^[1-5]\d\d$/);
					expect(response).toMatchObject({ description: expect.any(String) });
				}
				for (const s of operation.security ?? []) for (const scheme of Object.keys(s)) expect(doc.components.securitySchemes).toHaveProperty(scheme);
			}
		}
		expect(ids.length).toBe(routes.length);
		expect(new Set(ids).size).toBe(ids.length);
		const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"([^"]+)"/g)].map(m => m[1] ?? "");
		expect(refs.length).toBeGreaterThan(0);
		for (const ref of refs) expect(resolve(doc, ref)).toBeDefined();
	});

	it("turns a GET's params into query parameters, required unless optional or defaulted", () => {
		const list = op(doc, "/api/v1/admin/users", "get");
		expect(list).toMatchObject({ operationId: "listUsers", summary: "List users", tags: ["users"] });
		expect(list.requestBody).toBeUndefined();
		expect(list.parameters).toEqual([
			{ name: "limit", in: "query", required: false, schema: { type: "integer", minimum: 1, maximum: 100, default: 20 } },
			{ name: "q", in: "query", required: false, schema: { type: "string", maxLength: 64 } },
			{ name: "role", in: "query", required: true, schema: { enum: ["admin", "user"] } },
			{
				name: "filter",
				in: "query",
				required: false,
				style: "deepObject",
				explode: true,
				schema: { type: "object", properties: { country: { type: "string" } }, required: ["country"] }
			}
		]);
		expect(list.responses["200"]).toEqual({ description: "OK", content: { "application/json": { schema: { type: "array", items: userSchema } } } });
	});

	it("makes a POST's params one JSON body, closed under $$strict, with its required list", () => {
		const create = op(doc, "/api/v1/admin/users", "post");
		expect(create.parameters).toBeUndefined();
		expect(create.requestBody).toEqual({
			required: true,
			content: {
				"application/json": {
					schema: {
						type: "object",
						properties: {
							email: { type: "string", format: "email", maxLength: 254 },
							name: { type: "string", minLength: 1, maxLength: 80 },
							role: { enum: ["admin", "user"], default: "user" }
						},
						required: ["email", "name"],
						additionalProperties: false
					}
				}
			}
		});
		expect(create.responses["201"]).toMatchObject({ content: { "application/json": { schema: userSchema } } });
		expect(codesOf(create, 413)).toEqual(["PAYLOAD_TOO_LARGE"]);
		expect(codesOf(create, 415)).toEqual(["UNSUPPORTED_MEDIA_TYPE"]);

		// Without $$strict the body stays open.
		const login = op(doc, "/api/v1/auth/login", "post");
		expect(login.requestBody?.content["application/json"].schema).not.toHaveProperty("additionalProperties");
	});

	it("keeps path params out of a PATCH body; an all-optional body is not required", () => {
		const update = op(doc, "/api/v1/admin/users/{id}", "patch");
		expect(update.parameters).toEqual([{ name: "id", in: "path", required: true, schema: { type: "string", pattern: "^[0-9a-z]{26}$" } }]);
		expect(update.requestBody).toEqual({
			required: false,
			content: {
				"application/json": {
					schema: {
						type: "object",
						properties: { email: { type: "string", format: "email" }, phone: { type: ["string", "null"], maxLength: 32 } },
						additionalProperties: false
					}
				}
			}
		});
	});

	it("gives a DELETE its path param, no body and an empty 204", () => {
		const del = op(doc, "/api/v1/admin/users/{id}", "delete");
		expect(del.parameters).toEqual([{ name: "id", in: "path", required: true, schema: { type: "string", pattern: "^[0-9a-z]{26}$" } }]);
		expect(del.requestBody).toBeUndefined();
		expect(del.responses["204"]).toEqual({ description: "No content" });
		expect(del.responses).not.toHaveProperty("413");
		expect(del.responses).not.toHaveProperty("304");
		// A body-less POST has no requestBody either, but its answer is still 204 without content.
		const logout = op(doc, "/api/v1/auth/logout", "post");
		expect(logout.requestBody).toBeUndefined();
		expect(logout.responses["204"]).toEqual({ description: "No content" });
	});

	it("maps several path params, in path order", () => {
		const get = op(doc, "/api/v1/regions/{region}/users/{id}", "get");
		expect(get.parameters?.map(p => [p.in, p.name])).toEqual([
			["path", "region"],
			["path", "id"]
		]);
	});

	it("secures auth routes with bearer and documents 401, 403 only with a permission, and marks public routes `security: []`", () => {
		const update = op(doc, "/api/v1/admin/users/{id}", "patch");
		expect(update.security).toEqual([{ bearer: [] }]);
		expect(update["x-permission"]).toEqual({ resource: "users", action: "update" });
		expect(update.description).toContain("users:update");
		expect(Object.keys(update.responses).sort()).toEqual(["200", "400", "401", "403", "413", "415", "429", "431", "500"]);
		expect(codesOf(update, 401)).toEqual(["UNAUTHORIZED"]);
		expect(update.responses["401"]?.headers).toHaveProperty("WWW-Authenticate");

		const logout = op(doc, "/api/v1/auth/logout", "post");
		expect(logout.security).toEqual([{ bearer: [] }]);
		expect(logout.responses).toHaveProperty("401");
		expect(logout.responses).not.toHaveProperty("403");

		const login = op(doc, "/api/v1/auth/login", "post");
		expect(login.security).toEqual([]);
		expect(login.description).toMatch(/public/i);
		expect(Object.keys(login.responses).sort()).toEqual(["200", "400", "413", "415", "429", "431", "500"]);
		expect(login.responses["429"]?.headers).toHaveProperty("Retry-After");
	});

	it("answers 304 on GET routes with a body (weak ETags)", () => {
		expect(op(doc, "/api/v1/admin/users", "get").responses["304"]).toEqual({ description: expect.stringContaining("If-None-Match") });
		expect(op(doc, "/api/v1/admin/users", "post").responses).not.toHaveProperty("304");
	});

	it("documents each error a route declares as the gateway answers it, codes narrowed per status", () => {
		const declaring = (errors: RouteDoc["errors"]) =>
			op(openApiDocument({ title: "t", version: "1", routes: [{ ...routes[4]!, errors }], paramsOf: name => params[name] }), "/api/v1/auth/login", "post");
		const login = declaring([
			{ type: "INVALID_CREDENTIALS", status: 401 },
			{ type: "RATE_LIMITED", status: 429 },
			{ type: "REFRESH_CONFLICT", status: 409 },
			{ type: "UNKNOWN_REGION", status: 422 },
			{ type: "OUTCOME_UNKNOWN", status: 504 },
			{ type: "REQUEST_TIMEOUT", status: 504 },
			{ type: "REGION_UNAVAILABLE", status: 503 },
			{ type: "SERVICE_NOT_AVAILABLE", status: 404 }
		]);
		// The edge maps them: any 401 is UNAUTHORIZED, a service's 422 is a validation failure, a missing service upstream is a 502.
		expect(codesOf(login, 401)).toEqual(["UNAUTHORIZED"]);
		expect(codesOf(login, 409)).toEqual(["REFRESH_CONFLICT"]);
		expect(codesOf(login, 400)).toEqual(["BAD_REQUEST", "VALIDATION_FAILED"]);
		expect(codesOf(login, 429)).toEqual(["RATE_LIMITED"]);
		expect(codesOf(login, 502)).toEqual(["UPSTREAM_UNAVAILABLE"]);
		expect(codesOf(login, 503)).toEqual(["REGION_UNAVAILABLE"]);
		expect(codesOf(login, 504)).toEqual(["OUTCOME_UNKNOWN", "UPSTREAM_TIMEOUT"]);
		expect(login.responses["504"]?.description).toContain("OUTCOME_UNKNOWN");
		expect(login.responses["503"]?.headers).toHaveProperty("Retry-After");
		expect(login.responses).not.toHaveProperty("404");
	});

	it("documents other statuses answered with the success body, and non-JSON media types", () => {
		const readiness = { type: "object", required: ["status"], properties: { status: { type: "string" } } };
		const bare = openApiDocument({
			title: "t",
			version: "1",
			routes: [
				{
					method: "GET",
					path: "/readyz",
					name: "readyz",
					summary: "s",
					tag: "meta",
					auth: false,
					status: 200,
					response: readiness,
					alsoAnswers: { 503: "Not ready" }
				},
				{
					method: "GET",
					path: "/docs",
					name: "docs",
					summary: "s",
					tag: "meta",
					auth: false,
					status: 200,
					response: { type: "string" },
					mediaTypes: ["text/html"]
				}
			],
			paramsOf: () => undefined
		});
		expect(op(bare, "/readyz", "get").responses["503"]).toEqual({ description: "Not ready", content: { "application/json": { schema: readiness } } });
		expect(op(bare, "/docs", "get").responses["200"]).toEqual({ description: "OK", content: { "text/html": { schema: { type: "string" } } } });
	});

	it("describes every error with the shared envelope", () => {
		expect(doc.components.schemas.Error).toEqual({
			type: "object",
			required: ["error"],
			properties: {
				error: {
					type: "object",
					required: ["code", "message", "requestId"],
					properties: {
						code: expect.objectContaining({ type: "string" }),
						message: expect.objectContaining({ type: "string" }),
						requestId: expect.objectContaining({ type: "string" }),
						details: expect.objectContaining({
							type: "array",
							items: { type: "object", required: ["field", "message"], properties: { field: { type: "string" }, message: { type: "string" } } }
						})
					}
				}
			}
		});
		for (const operation of Object.values(doc.paths).flatMap(item => Object.values(item)))
			for (const [status, response] of Object.entries(operation.responses)) {
				if (Number(status) < 400) continue;
				expect(response.content?.["application/json"]?.schema).toMatchObject({ allOf: [{ $ref: "#/components/schemas/Error" }, expect.any(Object)] });
			}
	});

	it("documents an action without a params schema with string path params and nothing else", () => {
		const bare = openApiDocument({
			title: "t",
			version: "1",
			routes: [{ method: "PUT", path: "/x/:key", name: "put", summary: "s", tag: "x", auth: false, status: 202 }],
			paramsOf: () => undefined
		});
		const put = op(bare, "/x/{key}", "put");
		expect(put.parameters).toEqual([{ name: "key", in: "path", required: true, schema: { type: "string" } }]);
		expect(put.requestBody).toBeUndefined();
		expect(put.responses["202"]).toEqual({ description: "Accepted" });
		// The document's own origin: every region's gateway serves the same API.
		expect(bare.servers).toEqual([{ url: "/", description: expect.any(String) }]);
		expect(bare.info).not.toHaveProperty("description");
	});

	it("refuses route tables that cannot make a valid document", () => {
		const base: RouteDoc = { method: "GET", path: "/a/:id", name: "a", summary: "s", tag: "t", auth: false, status: 200 };
		const make =
			(...rs: RouteDoc[]) =>
			() =>
				openApiDocument({ title: "t", version: "1", routes: rs, paramsOf: () => undefined });
		expect(make(base, { ...base, name: "b" })).toThrow(/two routes/);
		expect(make(base, { ...base, method: "DELETE" })).toThrow(/more than one route/);
		expect(make(base, { ...base, path: "/a/:key", name: "b" })).toThrow(/differ only in parameter names/);
		expect(make({ ...base, path: "/a/:id?" })).toThrow(/alias syntax/);
		expect(make({ ...base, path: "/files/*" })).toThrow(/alias syntax/);
		expect(make({ ...base, path: "/a/:id/:id" })).toThrow(/repeats/);
	});
});
