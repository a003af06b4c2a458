import { createHmac } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../app/node.ts";
import { parsePiiKeys } from "../../kernel/sealing.ts";
import { SigningKeys } from "../../services/auth-jwt/signing-keys.ts";
import { signAccess } from "../../services/auth-jwt/tokens.ts";
import type { EmbeddedRegions } from "../harness/embedded-regions.ts";
import { everyFeedHeard, REGION_IDS as ids, startEmbeddedRegions } from "../harness/embedded-regions.ts";
import type { GatewayName, HttpAnswer } from "../harness/gateways.ts";
import { gatewaySchemas, gatewayUrl, http } from "../harness/gateways.ts";
import { within } from "../harness/waiting.ts";
import { expectError } from "./expect-error.ts";

const nodes: Record<string, RegionNode> = {};
let cluster: EmbeddedRegions | undefined;
const url = (region: string, gateway: GatewayName) => gatewayUrl(nodes[region]!.broker, gateway);
/** Requests through one gateway of one region. */
const via = (region: string, gateway: GatewayName) => (method: string, path: string, opts?: Parameters<typeof http>[3]) =>
	http(url(region, gateway), method, path, opts);
const cnWww = via("cn-east", "api-www");
const cnApp = via("cn-east", "api-app");
const cnCms = via("cn-east", "api-cms");
const euWww = via("eu-central", "api-www");

/** The app gateway of cn-east counts IPs tightly, to reach its limit quickly. */
const IP_LIMIT = 25;

async function usersIn(region: string): Promise<{ id: string; username: string }[]> {
	return nodes[region]!.stores.sql.db.selectFrom("users").select(["id", "username"]).execute() as Promise<{ id: string; username: string }[]>;
}

async function register(www: ReturnType<typeof via>, body: Record<string, unknown>): Promise<{ id: string; region: string }> {
	const res = await www("POST", "/api/v1/auth/register", { body });
	expect(res.status).toBe(201);
	return res.body;
}

async function login(
	gateway: ReturnType<typeof via>,
	loginName: string,
	password: string
): Promise<{ accessToken: string; refreshToken: string; region: string }> {
	const res = await gateway("POST", "/api/v1/auth/login", { body: { login: loginName, password } });
	expect(res.status, res.text).toBe(200);
	return res.body;
}

beforeAll(async () => {
	cluster = await startEmbeddedRegions({
		namespacePrefix: "e2e-",
		services: ["sv-region", "sv-user", "auth-jwt", "auth-rbac"],
		schemas: gatewaySchemas({ "api-app": { rateLimits: { ip: { max: IP_LIMIT, windowMs: 60_000 }, user: { max: 1000, windowMs: 60_000 } } } })
	});
	Object.assign(nodes, cluster.nodes);
	await everyFeedHeard(cluster, 10_000);
});

afterAll(() => cluster?.stop());

describe("gateways: register, log in and read a profile across regions", () => {
	it("registers at cn-east a user of eu-central, logs in through cn-east, and serves /me from eu-central", async () => {
		const user = await register(cnWww, { username: "klara", password: "zugspitze 2962", email: "klara@example.de", country: "DE" });
		expect(user).toMatchObject({ username: "klara", region: "eu-central" });
		const tokens = await login(cnWww, "klara@example.de", "zugspitze 2962");
		expect(tokens).toEqual({ accessToken: expect.any(String), refreshToken: expect.any(String), tokenType: "Bearer", expiresIn: 900, region: "eu-central" });
		const me = await cnWww("GET", "/api/v1/me", { token: tokens.accessToken });
		expect(me.status).toBe(200);
		expect(me.body).toEqual({
			id: user.id,
			username: "klara",
			email: "klara@example.de",
			phone: null,
			country: "DE",
			region: "eu-central",
			createdAt: expect.any(String)
		});
		expect((await usersIn("eu-central")).map(u => u.id)).toContain(user.id);
		expect((await usersIn("cn-east")).map(u => u.id)).not.toContain(user.id);
		expect((await usersIn("ap-south")).map(u => u.id)).not.toContain(user.id);
	});

	it("changes the profile with PATCH /me and keeps fields it does not know out", async () => {
		const tokens = await login(euWww, "klara", "zugspitze 2962");
		const patched = await euWww("PATCH", "/api/v1/me", { token: tokens.accessToken, body: { phone: "+4989123456" } });
		expect(patched.status).toBe(200);
		expect(patched.body).toMatchObject({ username: "klara", phone: "+4989123456", region: "eu-central" });
		for (const extra of [{ role: "admin" }, { region: "cn-east" }, { id: "0".repeat(26) }, { balance: 1000 }]) {
			const res = await euWww("PATCH", "/api/v1/me", { token: tokens.accessToken, body: { country: "AT", ...extra } });
			expectError(res, 400, "VALIDATION_FAILED");
		}
		expect((await euWww("GET", "/api/v1/me", { token: tokens.accessToken })).body.country).toBe("DE");
	});

	it("refuses registration with extra fields and stores nothing", async () => {
		const before = await Promise.all(ids.map(usersIn));
		for (const extra of [{ role: "admin" }, { region: "ap-south" }, { id: "0".repeat(26) }, { balance: 1000 }]) {
			const res = await cnWww("POST", "/api/v1/auth/register", { body: { username: "sneaky", password: "long enough 1", ...extra } });
			expectError(res, 400, "VALIDATION_FAILED");
			expect(res.body.error.details.some((d: { message: string }) => /forbidden|not allowed|field/i.test(d.message))).toBe(true);
		}
		expect(await Promise.all(ids.map(usersIn))).toEqual(before);
		// The name was never reserved either: it can be registered now.
		expect((await cnWww("POST", "/api/v1/auth/register", { body: { username: "sneaky", password: "long enough 1" } })).status).toBe(201);
	});

	it("answers a taken username with 409 USERNAME_TAKEN, and bad input with field details", async () => {
		expectError(await cnWww("POST", "/api/v1/auth/register", { body: { username: "klara", password: "another one 1" } }), 409, "USERNAME_TAKEN");
		const bad = await cnWww("POST", "/api/v1/auth/register", { body: { username: "X", password: "short", email: "nope", country: "Germany" } });
		expectError(bad, 400, "VALIDATION_FAILED");
		expect([...new Set(bad.body.error.details.map((d: { field: string }) => d.field))].sort()).toEqual(["country", "email", "password", "username"]);
		expect(bad.text).not.toContain("short");
	});
});

describe("gateways: tokens at the edge", () => {
	let tokens: { accessToken: string; refreshToken: string };
	beforeAll(async () => {
		await register(cnWww, { username: "mei", password: "lantern 8848", country: "CN" });
		tokens = await login(cnWww, "mei", "lantern 8848");
	});

	it("never answers one user's request with another's identity, however requests interleave", async () => {
		const klara = await login(cnWww, "klara", "zugspitze 2962");
		const answers = await Promise.all(
			Array.from({ length: 40 }, (_, i) => cnWww("GET", "/api/v1/me", { token: i % 2 ? klara.accessToken : tokens.accessToken }))
		);
		expect(answers.map(a => a.body.username)).toEqual(Array.from({ length: 40 }, (_, i) => (i % 2 ? "klara" : "mei")));
	});

	it("requires a bearer token, and one of this gateway's client type", async () => {
		expectError(await cnWww("GET", "/api/v1/me"), 401, "UNAUTHORIZED");
		expect((await cnWww("GET", "/api/v1/me")).headers.get("www-authenticate")).toMatch(/^Bearer/);
		expectError(await cnApp("GET", "/api/v1/me", { token: tokens.accessToken }), 401, "UNAUTHORIZED");
		expectError(await cnWww("GET", "/api/v1/me", { token: tokens.refreshToken }), 401, "UNAUTHORIZED");
		// A www refresh token is no good at the app gateway either, and stays good at its own.
		expectError(await cnApp("POST", "/api/v1/auth/refresh", { body: { refreshToken: tokens.refreshToken } }), 401, "UNAUTHORIZED");
	});

	it("refreshes (rotating), and a replayed refresh token ends the session", async () => {
		const next = await cnWww("POST", "/api/v1/auth/refresh", { body: { refreshToken: tokens.refreshToken } });
		expect(next.status).toBe(200);
		await new Promise(r => setTimeout(r, 5100));
		expectError(await cnWww("POST", "/api/v1/auth/refresh", { body: { refreshToken: tokens.refreshToken } }), 401, "UNAUTHORIZED");
		await within(async () => (await cnWww("GET", "/api/v1/me", { token: next.body.accessToken })).status === 401, 1000);
		tokens = await login(cnWww, "mei", "lantern 8848");
	}, 15_000);

	it("refuses forged and ill-claimed tokens over HTTP", async () => {
		const [header, payload, signature] = tokens.accessToken.split(".") as [string, string, string];
		const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
		const claims = JSON.parse(Buffer.from(payload, "base64url").toString());
		const kid = JSON.parse(Buffer.from(header, "base64url").toString()).kid;
		const jwks = (await cnWww("GET", "/.well-known/jwks.json")).body;
		const publicPem = JSON.stringify(jwks.keys.find((k: { kid: string }) => k.kid === kid));
		const hs = b64({ alg: "HS256", kid, typ: "JWT" });
		const tampered = Buffer.from(payload, "base64url");
		tampered[tampered.length - 3] = tampered[tampered.length - 3]! ^ 1;
		// The region's real key, to sign tokens whose claims are wrong.
		const region = nodes["cn-east"]!;
		const signer = (
			await new SigningKeys(region.stores.sql.db, "cn-east", parsePiiKeys(process.env.EDGEHOME_PII_KEYS!), {
				rotateAfterMs: 1e12,
				publishLeadMs: 1e9,
				retireAfterMs: 1e9
			}).load()
		).signer!;
		const ok = { issuer: "edgehome", audience: "edgehome-api" };
		const mine = { sub: claims.sub, rgn: claims.rgn, ep: claims.ep, cli: claims.cli, sid: claims.sid };
		const forged = {
			"alg none": `${b64({ alg: "none", kid })}.${payload}.`,
			"HS256 with the public key": `${hs}.${payload}.${createHmac("sha256", publicPem).update(`${hs}.${payload}`).digest("base64url")}`,
			"one payload byte changed": `${header}.${tampered.toString("base64url")}.${signature}`,
			"expired beyond tolerance": await signAccess(ok, signer, mine, Date.now() - 16 * 60_000),
			"nbf in the future": await signAccess(ok, signer, mine, Date.now() + 5 * 60_000),
			"wrong issuer": await signAccess({ ...ok, issuer: "someone-else" }, signer, mine),
			"wrong audience": await signAccess({ ...ok, audience: "another-api" }, signer, mine),
			"hostile kid (path)": `${b64({ alg: "ES256", kid: "../../dev/null" })}.${payload}.${signature}`,
			"hostile kid (URL)": `${b64({ alg: "ES256", kid: "https://evil.example/jwks.json" })}.${payload}.${signature}`
		};
		for (const [what, token] of Object.entries(forged)) {
			const res = await cnWww("GET", "/api/v1/me", { token });
			expect({ what, status: res.status, code: res.body?.error?.code }).toEqual({ what, status: 401, code: "UNAUTHORIZED" });
		}
		// Within the clock tolerance, an expired token still passes.
		expect((await cnWww("GET", "/api/v1/me", { token: await signAccess(ok, signer, mine, Date.now() - 15 * 60_000 - 10_000) })).status).toBe(200);
	});

	it("logs out with 204; the token is refused from then on, in every region", async () => {
		const t = await login(cnWww, "mei", "lantern 8848");
		const res = await cnWww("POST", "/api/v1/auth/logout", { token: t.accessToken });
		expect(res.status).toBe(204);
		expect(res.text).toBe("");
		await within(
			async () => (await Promise.all(ids.map(r => via(r, "api-www")("GET", "/api/v1/me", { token: t.accessToken })))).every(x => x.status === 401),
			1000
		);
	});

	it("lets a user end only their own sessions: another user's session id is not found", async () => {
		const mine = await login(cnWww, "mei", "lantern 8848");
		await register(cnWww, { username: "other", password: "someone else 1", country: "KR" });
		const theirs = await login(cnApp, "other", "someone else 1");
		const theirSid = JSON.parse(Buffer.from(theirs.accessToken.split(".")[1]!, "base64url").toString()).sid;
		const sessions = await cnWww("GET", "/api/v1/me/sessions", { token: mine.accessToken });
		expect(sessions.body.some((s: { current: boolean }) => s.current)).toBe(true);
		const notFound = await cnWww("DELETE", `/api/v1/me/sessions/${theirSid}`, { token: mine.accessToken });
		expectError(notFound, 404, "NOT_FOUND");
		// A missing session, not a missing route.
		expect(notFound.body.error.message).toBe("no such session");
		expect((await cnApp("GET", "/api/v1/me", { token: theirs.accessToken })).status).toBe(200);
	});
});

describe("gateways: only listed routes answer", () => {
	it("answers 404 for Moleculer's internal routes, unlisted actions and unlisted methods", async () => {
		for (const [method, path] of [
			["GET", "/~node/services"],
			["GET", "/~node/actions"],
			["GET", "/$node/list"],
			["POST", "/api/v1/auth/authenticate"],
			["GET", "/api/v1/sv-user/get"],
			["GET", "/api-www/me"],
			["POST", "/api/v1/me"],
			["GET", "/api/v1/auth/login"],
			["GET", "/list-aliases"],
			["GET", "/"]
		] as const)
			expectError(await cnWww(method, path), 404, "NOT_FOUND");
	});

	it("lists in its OpenAPI document exactly the routes that answer", async () => {
		for (const gateway of ["api-app", "api-www", "api-cms", "api-wx"] as const) {
			const doc = (await http(url("cn-east", gateway), "GET", "/api/v1/openapi.json")).body;
			expect(doc.openapi).toBe("3.1.0");
			const operations = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, item]) =>
				Object.keys(item).map(m => [m.toUpperCase(), path] as const)
			);
			for (const [method, path] of operations) {
				const concrete = path.replace(/\{([^}]+)\}/g, (_, name: string) =>
					name === "file"
						? "swagger-ui.css"
						: name === "id"
							? "0".repeat(26)
							: name === "moveId"
								? "00000000-0000-0000-0000-000000000000"
								: name === "sid"
									? "00000000-0000-0000-0000-000000000000"
									: "user"
				);
				const res = await http(url("cn-east", gateway), method, concrete, ["POST", "PUT", "PATCH"].includes(method) ? { body: {} } : {});
				expect({ gateway, method, path, notRouted: res.status === 404 && res.body?.error?.message === "no such route" }).toEqual({
					gateway,
					method,
					path,
					notRouted: false
				});
			}
			// Only api-wx has the WeChat route, only api-cms the admin ones.
			expect(operations.some(([, p]) => p === "/api/v1/wx/login")).toBe(gateway === "api-wx");
			expect(operations.some(([, p]) => p.startsWith("/api/v1/admin/"))).toBe(gateway === "api-cms");
			if (gateway !== "api-wx") expectError(await http(url("cn-east", gateway), "POST", "/api/v1/wx/login", { body: { code: "abc" } }), 404, "NOT_FOUND");
			if (gateway !== "api-cms") expectError(await http(url("cn-east", gateway), "GET", "/api/v1/admin/users"), 404, "NOT_FOUND");
		}
	});

	it("serves Swagger UI from the package, under a strict CSP", async () => {
		const page = await cnWww("GET", "/docs");
		expect(page.status).toBe(200);
		expect(page.headers.get("content-type")).toMatch(/text\/html/);
		expect(page.headers.get("content-security-policy")).toMatch(/script-src 'self'/);
		expect(page.headers.get("referrer-policy")).toBe("no-referrer");
		expect(page.headers.get("x-frame-options")).toBe("DENY");
		expect(page.text).not.toMatch(/https?:\/\//);
		const bundle = await cnWww("GET", "/docs/swagger-ui-bundle.js");
		expect(bundle.status).toBe(200);
		expect(bundle.text.length).toBeGreaterThan(100_000);
		expectError(await cnWww("GET", "/docs/..%2F..%2Fpackage.json"), 404, "NOT_FOUND");
	});
});

describe("gateways: limits", () => {
	it("refuses a body of 64 kB + 1 with 413, and headers over 16 kB with 431", async () => {
		const over = JSON.stringify({ username: "x".repeat(64 * 1024 + 1 - '{"username":""}'.length) });
		expect(Buffer.byteLength(over)).toBe(64 * 1024 + 1);
		const res = await cnWww("POST", "/api/v1/auth/register", { raw: over, headers: { "content-type": "application/json" } });
		expectError(res, 413, "PAYLOAD_TOO_LARGE");
		const header = await fetch(`${url("cn-east", "api-www")}/api/v1/regions`, { headers: { "x-padding": "y".repeat(17 * 1024) } });
		expect(header.status).toBe(431);
		expect(((await header.json()) as { error: { code: string } }).error.code).toBe("HEADERS_TOO_LARGE");
	});

	it("does not let a client escape the IP rate limit by rotating X-Forwarded-For from an untrusted peer", async () => {
		let limited: HttpAnswer | undefined;
		for (let i = 0; i < IP_LIMIT + 5 && !limited; i++) {
			const res = await cnApp("GET", "/api/v1/regions", { headers: { "x-forwarded-for": `203.0.113.${i}` } });
			if (res.status === 429) limited = res;
		}
		expect(limited).toBeDefined();
		expectError(limited!, 429, "RATE_LIMITED");
		expect(Number(limited!.headers.get("retry-after"))).toBeGreaterThan(0);
	});

	it("backs a login off after 5 wrong passwords, and an existing login exactly like one nobody has", async () => {
		await register(cnWww, { username: "guarded", password: "kept well 1" });
		/** What a client can compare: status, headers but the per-request ones, the error without its request id. */
		const seen = (res: HttpAnswer) => ({
			status: res.status,
			headers: [...res.headers].filter(([name]) => !["x-request-id", "date"].includes(name)),
			error: { ...res.body.error, requestId: undefined }
		});
		const answers: Record<string, ReturnType<typeof seen>[]> = {};
		for (const loginName of ["guarded", "guarded-by-nobody"]) {
			const attempt = async (password: string) => seen(await cnWww("POST", "/api/v1/auth/login", { body: { login: loginName, password } }));
			answers[loginName] = [];
			for (let i = 0; i < 5; i++) answers[loginName]!.push(await attempt(`wrong ${i} guess`));
			answers[loginName]!.push(await attempt("kept well 1"));
		}
		expect(answers.guarded!.slice(0, 5).map(a => [a.status, a.error.code])).toEqual(Array(5).fill([401, "UNAUTHORIZED"]));
		expect(answers.guarded![5]).toMatchObject({ status: 429, error: { code: "RATE_LIMITED" } });
		expect(answers.guarded![5]!.headers).toContainEqual(["retry-after", "1"]);
		expect(answers.guarded).toEqual(answers["guarded-by-nobody"]);
	});

	it("answers an unknown login like a wrong password", async () => {
		const unknown = await cnWww("POST", "/api/v1/auth/login", { body: { login: "nobody-at-all", password: "whatever 123" } });
		const wrong = await cnWww("POST", "/api/v1/auth/login", { body: { login: "klara", password: "whatever 123" } });
		expectError(unknown, 401, "UNAUTHORIZED");
		expect(unknown.body.error.message).toBe(wrong.body.error.message);
	});
});

describe("gateways: headers", () => {
	it("carries X-Request-Id on every response and continues an incoming traceparent", async () => {
		const trace = "4bf92f3577b34da6a3ce929d0e0e4736";
		const res = await cnWww("GET", "/api/v1/regions", { headers: { traceparent: `00-${trace}-00f067aa0ba902b7-01` } });
		expect(res.headers.get("x-request-id")).toBe(trace);
		expect(res.headers.get("traceparent")).toMatch(new RegExp(`^00-${trace}-[0-9a-f]{16}-01$`));
		expect(res.headers.get("traceparent")).not.toContain("00f067aa0ba902b7");
		for (const r of [await cnWww("GET", "/nope"), await cnWww("POST", "/api/v1/auth/login", { body: {} })]) {
			expect(r.headers.get("x-request-id")).toMatch(/^[0-9a-f]{32}$/);
			expect(r.headers.get("traceparent")).toBeNull();
		}
	});

	it("sends security headers, and an ETag that a conditional GET turns into 304", async () => {
		const res = await cnWww("GET", "/api/v1/regions");
		expect(res.body.map((r: { id: string }) => r.id).sort()).toEqual([...ids].sort());
		expect(res.headers.get("x-content-type-options")).toBe("nosniff");
		expect(res.headers.get("x-frame-options")).toBe("DENY");
		expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
		expect(res.headers.get("cache-control")).toBe("no-store");
		expect(res.headers.get("strict-transport-security")).toMatch(/^max-age=\d+/);
		const etag = res.headers.get("etag");
		expect(etag).toBeTruthy();
		// fetch would add "Cache-Control: no-cache" to a conditional request, which asks for a full answer.
		expect((await cnWww("GET", "/api/v1/regions", { headers: { "if-none-match": etag!, "cache-control": "max-age=0" } })).status).toBe(304);
	});

	it("answers health and readiness on every gateway", async () => {
		for (const gateway of ["api-app", "api-www", "api-cms", "api-wx"] as const) {
			expect((await http(url("ap-south", gateway), "GET", "/healthz")).body).toEqual({ status: "ok" });
			expect((await http(url("ap-south", gateway), "GET", "/readyz")).status).toBe(200);
		}
	});
});

describe("gateways: staff routes on api-cms", () => {
	let staffToken: string;
	let userToken: string;
	let target: { id: string };

	beforeAll(async () => {
		const staff = await register(cnCms, { username: "opsie", password: "operations 24x7", country: "IN" });
		await nodes["cn-east"]!.broker.call("auth-rbac.grant", { userId: staff.id, role: "ops" });
		staffToken = (await login(cnCms, "opsie", "operations 24x7")).accessToken;
		await register(cnCms, { username: "plain", password: "just a user 1" });
		userToken = (await login(cnCms, "plain", "just a user 1")).accessToken;
		target = await register(cnWww, { username: "mover", password: "pack the boxes 1", country: "JP" });
	});

	it("refuses an ordinary user on every admin route with 403", async () => {
		const doc = (await cnCms("GET", "/api/v1/openapi.json")).body;
		for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
			if (!path.startsWith("/api/v1/admin/")) continue;
			for (const method of Object.keys(item)) {
				const concrete = path
					.replace("{id}", target.id)
					.replace("{moveId}", "00000000-0000-0000-0000-000000000000")
					.replace(/\{[^}]+\}/g, "user");
				const res = await cnCms(method.toUpperCase(), concrete, { token: userToken, ...(["post", "put", "patch"].includes(method) ? { body: {} } : {}) });
				expect({ method, path, status: res.status, code: res.body?.error?.code }).toEqual({ method, path, status: 403, code: "FORBIDDEN" });
			}
		}
	});

	it("lets ops list users, read one, and move one (202, then progress until moved)", async () => {
		const list = await cnCms("GET", "/api/v1/admin/users?q=mov&pageSize=10", { token: staffToken });
		expect(list.status).toBe(200);
		expect(list.body.items.map((u: { username: string }) => u.username)).toEqual(["mover"]);
		expectError(await cnCms("GET", "/api/v1/admin/users?pageSize=101", { token: staffToken }), 400, "VALIDATION_FAILED");
		const one = await cnCms("GET", `/api/v1/admin/users/${target.id}`, { token: staffToken });
		expect(one.body).toMatchObject({ id: target.id, username: "mover", region: "cn-east", roles: ["user"] });
		const started = await cnCms("POST", `/api/v1/admin/users/${target.id}/move`, { token: staffToken, body: { region: "ap-south" } });
		expect(started.status).toBe(202);
		expect(started.body.moveId).toMatch(/^[0-9a-f-]{36}$/);
		await within(async () => (await cnCms("GET", `/api/v1/admin/moves/${started.body.moveId}`, { token: staffToken })).body.state === "moved", 15_000);
		expect((await cnCms("GET", `/api/v1/admin/users/${target.id}`, { token: staffToken })).body.region).toBe("ap-south");
		expectError(await cnCms("GET", "/api/v1/admin/moves/00000000-0000-0000-0000-000000000000", { token: staffToken }), 404, "NOT_FOUND");
	}, 30_000);

	it("keeps role management to admins; an admin grants and revokes", async () => {
		expectError(await cnCms("PUT", `/api/v1/admin/users/${target.id}/roles/support`, { token: staffToken }), 403, "FORBIDDEN");
		const admin = await register(cnCms, { username: "boss", password: "in charge 2026" });
		await nodes["cn-east"]!.broker.call("auth-rbac.grant", { userId: admin.id, role: "admin" });
		const adminToken = (await login(cnCms, "boss", "in charge 2026")).accessToken;
		expect((await cnCms("PUT", `/api/v1/admin/users/${target.id}/roles/support`, { token: adminToken })).status).toBe(200);
		expect((await cnCms("GET", `/api/v1/admin/users/${target.id}/roles`, { token: adminToken })).body.roles).toContain("support");
		expect((await cnCms("DELETE", `/api/v1/admin/users/${target.id}/roles/support`, { token: adminToken })).status).toBe(204);
		expect((await cnCms("GET", "/api/v1/admin/roles", { token: adminToken })).body.roles.map((r: { role: string }) => r.role)).toEqual(
			expect.arrayContaining(["user", "support", "ops", "admin"])
		);
	});
});
