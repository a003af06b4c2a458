import { request } from "node:http";
import { brotliCompressSync, deflateSync, gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../app/node.ts";
import type { EmbeddedRegions } from "../harness/embedded-regions.ts";
import { everyFeedHeard, REGION_IDS as ids, startEmbeddedRegions } from "../harness/embedded-regions.ts";
import type { GatewayName, HttpAnswer } from "../harness/gateways.ts";
import { gatewaySchemas, gatewayUrl, http } from "../harness/gateways.ts";
import { expectError, SECURITY_HEADERS } from "./expect-error.ts";

/**
 * The HTTP edges of the gateways (issue #11): each test sends the attack or the bad input through a
 * real gateway and checks the status, the stable code, the security headers and that nothing changed.
 */

const nodes: Record<string, RegionNode> = {};
let cluster: EmbeddedRegions | undefined;
const ALLOWED_ORIGIN = "https://app.example";
const url = (gateway: GatewayName, region = "cn-east") => gatewayUrl(nodes[region]!.broker, gateway);
const www = (method: string, path: string, opts?: Parameters<typeof http>[3]) => http(url("api-www"), method, path, opts);
const cms = (method: string, path: string, opts?: Parameters<typeof http>[3]) => http(url("api-cms"), method, path, opts);

/** One request with full control of method, headers and body bytes (fetch hides some of them). */
function raw(base: string, method: string, path: string, headers: Record<string, string> = {}, body?: Buffer): Promise<HttpAnswer> {
	return new Promise((resolve, reject) => {
		const req = request(`${base}${path}`, { method, headers: { ...headers, ...(body ? { "content-length": String(body.length) } : {}) } }, res => {
			const chunks: Buffer[] = [];
			res.on("data", c => chunks.push(c));
			res.on("end", () => {
				const text = Buffer.concat(chunks).toString();
				let parsed: unknown;
				try {
					parsed = text ? JSON.parse(text) : undefined;
				} catch {
					parsed = undefined;
				}
				const h = new Headers();
				for (const [name, value] of Object.entries(res.headers)) if (value !== undefined) h.set(name, Array.isArray(value) ? value.join(", ") : value);
				resolve({ status: res.statusCode!, headers: h, body: parsed, text });
			});
		});
		req.on("error", reject);
		req.end(body);
	});
}

async function usernames(): Promise<string[]> {
	const rows = await Promise.all(ids.map(r => nodes[r]!.stores.sql.db.selectFrom("users").select("username").execute() as Promise<{ username: string }[]>));
	return rows
		.flat()
		.map(r => r.username)
		.sort();
}

async function register(body: Record<string, unknown>): Promise<{ id: string }> {
	const res = await www("POST", "/api/v1/auth/register", { body });
	expect(res.status, res.text).toBe(201);
	return res.body;
}

async function accessToken(gateway: GatewayName, login: string, password: string): Promise<string> {
	const res = await http(url(gateway), "POST", "/api/v1/auth/login", { body: { login, password } });
	expect(res.status, res.text).toBe(200);
	return res.body.accessToken;
}

let token: string;
/** An ops user of api-cms. */
let staffId: string;
let staffToken: string;

beforeAll(async () => {
	cluster = await startEmbeddedRegions({
		namespacePrefix: "edges-",
		services: ["sv-region", "sv-user", "auth-jwt", "auth-rbac"],
		schemas: gatewaySchemas({ "api-app": { corsOrigins: ALLOWED_ORIGIN } })
	});
	Object.assign(nodes, cluster.nodes);
	await everyFeedHeard(cluster, 10_000);
	await register({ username: "edna", password: "harbour lights 77", country: "CN" });
	token = await accessToken("api-www", "edna", "harbour lights 77");
	staffId = (await register({ username: "opal", password: "harbour lights 77", country: "CN" })).id;
	await nodes["cn-east"]!.broker.call("auth-rbac.grant", { userId: staffId, role: "ops" });
	staffToken = await accessToken("api-cms", "opal", "harbour lights 77");
});

afterAll(() => cluster?.stop());

describe("gateway edges: prototype pollution in JSON bodies", () => {
	const bodies: Record<string, string> = {
		"__proto__ at the top": '{"username":"polly1","password":"harbour lights 77","__proto__":{"polluted":"yes"}}',
		"__proto__ escaped": '{"username":"polly2","password":"harbour lights 77","\\u005f_proto__":{"polluted":"yes"}}',
		"__proto__ nested": '{"username":"polly3","password":"harbour lights 77","email":"p3@example.com","x":[{"__proto__":{"polluted":"yes"}}]}',
		"constructor.prototype": '{"username":"polly4","password":"harbour lights 77","constructor":{"prototype":{"polluted":"yes"}}}',
		"prototype alone": '{"username":"polly5","password":"harbour lights 77","prototype":{"polluted":"yes"}}'
	};

	it("refuses a body holding __proto__, constructor or prototype anywhere with 400, and registers nobody", async () => {
		const before = await usernames();
		for (const [what, body] of Object.entries(bodies)) {
			const res = await www("POST", "/api/v1/auth/register", { raw: body, headers: { "content-type": "application/json" } });
			expect({ what, status: res.status }).toEqual({ what, status: 400 });
			expectError(res, 400, "VALIDATION_FAILED");
			expect(res.body.error.message).toMatch(/forbidden key/);
		}
		expect(await usernames()).toEqual(before);
		expect(({} as Record<string, unknown>).polluted).toBeUndefined();
	});

	it("refuses it on an authenticated route too, and the profile stays as it was", async () => {
		const res = await www("PATCH", "/api/v1/me", { token, raw: '{"__proto__":{"country":"DE"}}', headers: { "content-type": "application/json" } });
		expectError(res, 400, "VALIDATION_FAILED");
		expect((await www("GET", "/api/v1/me", { token })).body.country).toBe("CN");
	});
});

describe("gateway edges: parameters come from one place", () => {
	it("refuses credentials in the query string of POST /auth/login", async () => {
		// Old behaviour: the query overrode the body, so the right password in the URL logged in.
		const overriding = await www("POST", "/api/v1/auth/login?password=harbour%20lights%2077", { body: { login: "edna", password: "not the password" } });
		expectError(overriding, 400, "VALIDATION_FAILED");
		expect(overriding.body.error.details).toEqual([{ field: "password", message: expect.stringMatching(/query string/) }]);
		expectError(await www("POST", "/api/v1/auth/login?login=edna&password=harbour%20lights%2077"), 400, "VALIDATION_FAILED");
		expectError(await www("POST", "/api/v1/auth/login?login=edna&password=harbour%20lights%2077", { body: {} }), 400, "VALIDATION_FAILED");
	});

	it("never lets the query override the body on a POST, PUT, PATCH or DELETE route", async () => {
		expectError(await www("PATCH", "/api/v1/me?country=DE", { token, body: { country: "SG" } }), 400, "VALIDATION_FAILED");
		expect((await www("GET", "/api/v1/me", { token })).body.country).toBe("CN");
		const before = await usernames();
		expectError(
			await www("POST", "/api/v1/auth/register?username=quirky", { body: { username: "plainer", password: "harbour lights 77" } }),
			400,
			"VALIDATION_FAILED"
		);
		expect(await usernames()).toEqual(before);
		expectError(await www("DELETE", "/api/v1/me/sessions/00000000-0000-0000-0000-000000000000?sid=x", { token }), 400, "VALIDATION_FAILED");
	});

	it("does not take a GET route's parameters from a body", async () => {
		// Old behaviour: the body was merged into a GET's parameters, here narrowing the list to one name.
		const res = await raw(
			url("api-cms"),
			"GET",
			"/api/v1/admin/users",
			{ "content-type": "application/json", authorization: `Bearer ${staffToken}` },
			Buffer.from('{"q":"edna"}')
		);
		expectError(res, 400, "VALIDATION_FAILED");
		expect(res.body.error.details).toEqual([{ field: "q", message: expect.stringMatching(/query string/) }]);
	});

	it("does not take a path parameter from the body a second time", async () => {
		const res = await cms("POST", `/api/v1/admin/users/${staffId}/move`, { token: staffToken, body: { id: "0".repeat(26), region: "ap-south" } });
		expectError(res, 400, "VALIDATION_FAILED");
		expect(res.body.error.details).toEqual([{ field: "id", message: "is given in the path" }]);
	});
});

describe("gateway edges: Content-Encoding", () => {
	const registration = (username: string) => Buffer.from(JSON.stringify({ username, password: "harbour lights 77" }));
	const post = (encoding: string, body: Buffer) =>
		raw(url("api-www"), "POST", "/api/v1/auth/register", { "content-type": "application/json", "content-encoding": encoding }, body);

	it("accepts gzip", async () => {
		expect((await post("gzip", gzipSync(registration("zipped")))).status).toBe(201);
	});

	it("answers 415 for an encoding it does not take (br, deflate, unknown), naming the one it does, and registers nobody", async () => {
		const before = await usernames();
		const body = registration("squeezed");
		for (const [encoding, encoded] of [
			["br", brotliCompressSync(body)],
			["deflate", deflateSync(body)],
			["compress", body],
			["gzip, br", body]
		] as const) {
			const res = await post(encoding, encoded);
			expect({ encoding, status: res.status }).toEqual({ encoding, status: 415 });
			expectError(res, 415, "UNSUPPORTED_MEDIA_TYPE");
			expect(res.headers.get("accept-encoding")).toBe("gzip");
		}
		expect(await usernames()).toEqual(before);
	});

	it("answers 400 for a broken gzip body, not 500", async () => {
		const broken = gzipSync(registration("broken"));
		broken.fill(0x55, 10, broken.length - 8);
		for (const body of [broken, registration("plain"), gzipSync(registration("cut")).subarray(0, 12)])
			expectError(await post("gzip", body), 400, "BAD_REQUEST");
	});
});

describe("gateway edges: a service's own 4xx code reaches the caller", () => {
	it("answers RESIDENCY_VIOLATION (403) for moving a pinned user out of its jurisdiction, and FORBIDDEN only for RBAC", async () => {
		const pinned = await register({ username: "hedda", password: "harbour lights 77", country: "DE" });
		const res = await cms("POST", `/api/v1/admin/users/${pinned.id}/move`, { token: staffToken, body: { region: "cn-east" } });
		expectError(res, 403, "RESIDENCY_VIOLATION");
		expect(res.body.error.message).toMatch(/pinned/);
		expect((await cms("GET", `/api/v1/admin/users/${pinned.id}`, { token: staffToken })).body.region).toBe("eu-central");
		const plain = await accessToken("api-cms", "edna", "harbour lights 77");
		const refused = await cms("POST", `/api/v1/admin/users/${pinned.id}/move`, { token: plain, body: { region: "eu-central" } });
		expectError(refused, 403, "FORBIDDEN");
		expect(refused.body.error.message).toBe("not allowed");
	});

	it("says a missing session is not found, not that the route is unknown", async () => {
		const res = await www("DELETE", "/api/v1/me/sessions/00000000-0000-0000-0000-000000000000", { token });
		expectError(res, 404, "NOT_FOUND");
		expect(res.body.error.message).toBe("no such session");
	});
});

describe("gateway edges: the Authorization scheme is case-insensitive (RFC 9110)", () => {
	it("accepts bearer, BEARER and Bearer, and still refuses other schemes", async () => {
		for (const scheme of ["bearer", "BEARER", "Bearer", "bEaReR"]) {
			const res = await www("GET", "/api/v1/me", { headers: { authorization: `${scheme} ${token}` } });
			expect({ scheme, status: res.status, username: res.body?.username }).toEqual({ scheme, status: 200, username: "edna" });
		}
		for (const header of [`Basic ${token}`, `Bearer${token}`, `bearer`, `Token ${token}`])
			expectError(await www("GET", "/api/v1/me", { headers: { authorization: header } }), 401, "UNAUTHORIZED");
	});
});

describe("gateway edges: route matching", () => {
	it("matches a path only as written: other letter case or a trailing slash is no route", async () => {
		expect((await www("GET", "/api/v1/me", { token })).status).toBe(200);
		for (const path of ["/API/V1/ME", "/api/v1/me/", "/Api/V1/Me", "/api/v1/me//", "/api/v1/ME"])
			expectError(await www("GET", path, { token }), 404, "NOT_FOUND");
		expectError(await www("GET", "/API/V1/REGIONS"), 404, "NOT_FOUND");
		expectError(await www("POST", "/api/v1/auth/LOGIN", { body: { login: "edna", password: "harbour lights 77" } }), 404, "NOT_FOUND");
		expectError(await cms("GET", "/api/v1/ADMIN/users", { token: staffToken }), 404, "NOT_FOUND");
	});
});

describe("gateway edges: headers too large", () => {
	it("answers 431 in the error shape with the security headers", async () => {
		const res = await raw(url("api-www"), "GET", "/api/v1/regions", { "x-padding": "y".repeat(17 * 1024) });
		expectError(res, 431, "HEADERS_TOO_LARGE");
	});
});

describe("gateway edges: HEAD and OPTIONS", () => {
	const concrete = (path: string) => path.replace("{file}", "swagger-ui.css");

	it("answers HEAD on every GET route with the GET's status and headers and no body", async () => {
		for (const gateway of ["api-www", "api-cms"] as const) {
			const doc = (await http(url(gateway), "GET", "/api/v1/openapi.json")).body;
			const gets = Object.entries(doc.paths as Record<string, Record<string, unknown>>)
				.filter(([, item]) => "get" in item)
				.map(([path]) => concrete(path).replace(/\{[^}]+\}/g, "00000000-0000-0000-0000-000000000000"));
			expect(gets.length).toBeGreaterThan(8);
			const auth = { authorization: `Bearer ${gateway === "api-www" ? token : staffToken}` };
			for (const path of gets) {
				const get = await raw(url(gateway), "GET", path, auth);
				const head = await raw(url(gateway), "HEAD", path, auth);
				expect({ path, status: head.status, body: head.text }).toEqual({ path, status: get.status, body: "" });
				for (const name of ["content-type", "content-length", "etag", "www-authenticate", ...SECURITY_HEADERS])
					expect({ path, name, value: head.headers.get(name) }).toEqual({ path, name, value: get.headers.get(name) });
			}
		}
	});

	it("never runs a GET handler for OPTIONS: 405 with Allow on a listed path, 404 elsewhere", async () => {
		for (const headers of [{}, { "access-control-request-method": "GET" }, { origin: ALLOWED_ORIGIN, "access-control-request-method": "GET" }] as Record<
			string,
			string
		>[]) {
			const res = await raw(url("api-www"), "OPTIONS", "/api/v1/me", { ...headers, authorization: `Bearer ${token}` });
			expectError(res, 405, "METHOD_NOT_ALLOWED");
			expect(res.headers.get("allow")).toBe("GET, HEAD, PATCH");
			expect(res.text).not.toContain("edna");
		}
		expect((await raw(url("api-www"), "OPTIONS", "/api/v1/auth/login")).headers.get("allow")).toBe("POST");
		expectError(await raw(url("api-www"), "OPTIONS", "/api/v1/nothing-here"), 404, "NOT_FOUND");
	});

	it("answers a CORS preflight from an allowed origin where CORS is configured, and refuses other origins", async () => {
		const preflight = await raw(url("api-app"), "OPTIONS", "/api/v1/me", {
			origin: ALLOWED_ORIGIN,
			"access-control-request-method": "PATCH",
			"access-control-request-headers": "authorization, content-type"
		});
		expect(preflight.status).toBe(204);
		expect(preflight.text).toBe("");
		expect(preflight.headers.get("access-control-allow-origin")).toBe(ALLOWED_ORIGIN);
		expect(preflight.headers.get("access-control-allow-methods")).toContain("PATCH");
		expect(preflight.headers.get("access-control-allow-headers")).toMatch(/Authorization/);
		expectError(
			await raw(url("api-app"), "OPTIONS", "/api/v1/me", { origin: "https://evil.example", "access-control-request-method": "GET" }),
			403,
			"ORIGIN_NOT_ALLOWED"
		);
		// A preflight for a method the path does not have, or a path that does not exist.
		expectError(
			await raw(url("api-app"), "OPTIONS", "/api/v1/me", { origin: ALLOWED_ORIGIN, "access-control-request-method": "DELETE" }),
			405,
			"METHOD_NOT_ALLOWED"
		);
		expectError(
			await raw(url("api-app"), "OPTIONS", "/api/v1/nothing-here", { origin: ALLOWED_ORIGIN, "access-control-request-method": "GET" }),
			404,
			"NOT_FOUND"
		);
		// An actual cross-origin request gets the CORS headers.
		const get = await raw(url("api-app"), "GET", "/api/v1/regions", { origin: ALLOWED_ORIGIN });
		expect(get.headers.get("access-control-allow-origin")).toBe(ALLOWED_ORIGIN);
	});
});
