import { randomUUID } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../app/node.ts";
import type { OpenApiDocument, OpenApiOperation } from "../../mixins/gateway/openapi.ts";
import type { EmbeddedRegions } from "../harness/embedded-regions.ts";
import { openEventStream } from "../harness/event-stream.ts";
import type { GatewayName, HttpAnswer } from "../harness/gateways.ts";
import { answerOf, GATEWAYS, gatewaySchemas, gatewayUrl, http } from "../harness/gateways.ts";
import { deadNoticeLetter } from "../harness/notice-dead-letter.ts";
import { within } from "../harness/waiting.ts";
import type { WechatServer } from "../harness/wechat-server.ts";
import { startWechatServer } from "../harness/wechat-server.ts";

/*
 * Every documented operation of every gateway, driven over HTTP through cn-east: each answer's
 * status must be one its operation documents, and its body must match the documented schema
 * (ajv, JSON Schema 2020-12, the document's own `$ref`s). Every operation's success is reached.
 */

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;
const NAMES = Object.keys(GATEWAYS) as GatewayName[];
/** api-app counts client IPs tightly, so a burst reaches its 429. */
const APP_IP_LIMIT = 120;

let cluster: EmbeddedRegions | undefined;
let cn: RegionNode;
let wechat: WechatServer;
const docs = {} as Record<GatewayName, OpenApiDocument>;
const ajv = addFormats(new Ajv2020({ strict: false, allErrors: true }));
/** `gateway operationId status` of every answer checked. */
const answered = new Set<string>();

/** `{id}` templates as patterns, to find the operation a concrete path belongs to. */
function operationOf(gateway: GatewayName, method: string, path: string): { template: string; op: OpenApiOperation } {
	const bare = path.split("?")[0]!;
	for (const [template, item] of Object.entries(docs[gateway].paths)) {
		const pattern = new RegExp(`^${template.replace(/[.]/g, "\\.").replace(/\{[^}]+\}/g, "[^/]+")}$`);
		const op = item[method.toLowerCase() as keyof typeof item];
		if (op && pattern.test(bare)) return { template, op };
	}
	throw new Error(`${gateway} documents no ${method} ${bare}`);
}

const pointer = (...segments: string[]) => segments.map(s => encodeURIComponent(s.replace(/~/g, "~0").replace(/\//g, "~1"))).join("/");

/** The answer held to its operation: a documented status, a documented media type, a body matching the schema. */
function check(gateway: GatewayName, method: string, path: string, res: HttpAnswer): void {
	const { template, op } = operationOf(gateway, method, path);
	const what = `${gateway} ${method} ${template} → ${res.status} ${res.text.slice(0, 300)}`;
	const documented = op.responses[String(res.status)];
	expect(documented, `undocumented status: ${what}`).toBeDefined();
	answered.add(`${gateway} ${op.operationId} ${res.status}`);
	if (!documented!.content) {
		expect(res.text, `a body the document does not describe: ${what}`).toBe("");
		return;
	}
	const media = (res.headers.get("content-type") ?? "").split(";")[0]!.trim();
	expect(Object.keys(documented!.content), `undocumented media type ${media}: ${what}`).toContain(media);
	if (media !== "application/json") return;
	const validate = ajv.getSchema(
		`${gateway}#/${pointer("paths", template, method.toLowerCase(), "responses", String(res.status), "content", media, "schema")}`
	)!;
	expect(validate(res.body) ? [] : validate.errors, `body does not match its schema: ${what}`).toEqual([]);
}

async function call(gateway: GatewayName, method: string, path: string, opts: Parameters<typeof http>[3] = {}): Promise<HttpAnswer> {
	const res = await http(gatewayUrl(cn.broker, gateway), method, path, opts);
	check(gateway, method, path, res);
	return res;
}

beforeAll(async () => {
	wechat = await startWechatServer();
	// auth-jwt reads its settings when its module loads: the cluster is imported once they are set.
	Object.assign(process.env, { EDGEHOME_WX_APPID: wechat.appId, EDGEHOME_WX_SECRET: wechat.secret, EDGEHOME_WX_API_URL: wechat.url });
	const { startEmbeddedRegions } = await import("../harness/embedded-regions.ts");
	cluster = await startEmbeddedRegions({
		namespacePrefix: "contract-",
		services: ["sv-region", "sv-user", "auth-jwt", "auth-rbac", "sv-money", "sv-notice", "sv-log", "sv-oss"],
		schemas: gatewaySchemas({ "api-app": { rateLimits: { ip: { max: APP_IP_LIMIT, windowMs: 60_000 }, user: { max: 1000, windowMs: 60_000 } } } })
	});
	cn = cluster.nodes["cn-east"]!;
	await within(
		async () => Object.values((await cn.broker.call<{ current: Record<string, boolean> }, unknown>("auth-jwt.stats", {})).current).every(Boolean),
		10_000
	);
	for (const name of NAMES) {
		docs[name] = (await http(gatewayUrl(cn.broker, name), "GET", "/api/v1/openapi.json")).body;
		ajv.addSchema(docs[name] as object, name);
	}
}, 60_000);

afterAll(async () => {
	await cluster?.stop();
	await wechat?.stop();
});

/** What every gateway answers, in the order a client meets it. */
async function commonRoutes(gateway: GatewayName): Promise<void> {
	const name = `c${gateway.slice(4)}${randomUUID().slice(0, 6)}`;
	const password = "contract test 2026";
	const c = (method: string, path: string, opts?: Parameters<typeof http>[3]) => call(gateway, method, path, opts);

	expect((await c("POST", "/api/v1/auth/register", { body: { username: name, password, email: `${name}@example.com` } })).status).toBe(201);
	expect((await c("POST", "/api/v1/auth/register", { body: { username: name, password } })).status).toBe(409);
	expect((await c("POST", "/api/v1/auth/register", { body: { username: "x", password: "short", role: "admin" } })).status).toBe(400);
	expect((await c("POST", "/api/v1/auth/register", { raw: "{not json", headers: { "content-type": "application/json" } })).status).toBe(400);
	expect((await c("POST", "/api/v1/auth/register", { body: { username: name, password: "x".repeat(70_000) } })).status).toBe(413);

	expect((await c("POST", "/api/v1/auth/login", { body: { login: name, password: "not the password" } })).status).toBe(401);
	const tokens = (await c("POST", "/api/v1/auth/login", { body: { login: name, password } })).body;
	expect(tokens.accessToken).toEqual(expect.any(String));

	const refreshed = await c("POST", "/api/v1/auth/refresh", { body: { refreshToken: tokens.refreshToken } });
	expect(refreshed.status, refreshed.text).toBe(200);
	// The same token again at once: the rotation is in flight (409), then it is spent (401).
	expect([401, 409]).toContain((await c("POST", "/api/v1/auth/refresh", { body: { refreshToken: tokens.refreshToken } })).status);
	expect((await c("POST", "/api/v1/auth/refresh", { body: { refreshToken: "x".repeat(43) } })).status).toBe(401);

	const token = tokens.accessToken;
	const me = await c("GET", "/api/v1/me", { token });
	expect(me.status).toBe(200);
	expect((await c("GET", "/api/v1/me", { token, headers: { "if-none-match": me.headers.get("etag")!, "cache-control": "max-age=0" } })).status).toBe(304);
	expect((await c("GET", "/api/v1/me")).status).toBe(401);
	expect((await c("GET", "/api/v1/me?extra=1", { token })).status).toBe(400);
	expect((await c("PATCH", "/api/v1/me", { token, body: { country: "JP" } })).status).toBe(200);
	expect((await c("PATCH", "/api/v1/me", { token, body: { role: "admin" } })).status).toBe(400);

	const sessions = await c("GET", "/api/v1/me/sessions", { token });
	expect(sessions.status).toBe(200);
	expect((await c("DELETE", `/api/v1/me/sessions/${randomUUID()}`, { token })).status).toBe(404);
	const current = (sessions.body as { sid: string; current: boolean }[]).find(s => s.current)!;
	expect((await c("GET", "/api/v1/me/activity?limit=5", { token })).status).toBe(200);
	expect((await c("GET", "/api/v1/me/activity?limit=101", { token })).status).toBe(400);
	expect((await c("DELETE", `/api/v1/me/sessions/${current.sid}`, { token })).status).toBe(204);

	for (const path of [
		"/api/v1/regions",
		"/.well-known/jwks.json",
		"/api/v1/openapi.json",
		"/docs",
		"/docs/swagger-ui.css",
		"/docs/favicon-16x16.png",
		"/healthz",
		"/readyz"
	])
		expect((await c("GET", path)).status, path).toBe(200);
	expect((await c("GET", "/docs/nothing-here.js")).status).toBe(404);
	expect((await c("GET", "/healthz", { headers: { "x-padding": "p".repeat(17_000) } })).status).toBe(431);

	const again = (await c("POST", "/api/v1/auth/login", { body: { login: name, password } })).body.accessToken;
	expect((await c("POST", "/api/v1/auth/logout", { token: again })).status).toBe(204);
	expect((await c("POST", "/api/v1/auth/logout", { token: again })).status).toBe(401);
}

/** The caller's wallet, as every gateway serves it: each operation's success, a replay, and refusals of each kind. */
async function walletRoutes(gateway: GatewayName, operator: string): Promise<void> {
	const c = (method: string, path: string, opts?: Parameters<typeof http>[3]) => call(gateway, method, path, opts);
	const password = "contract wallet 2026";
	const [payer, payee] = [`wp${gateway.slice(4)}`, `wq${gateway.slice(4)}`];
	for (const name of [payer, payee]) expect((await c("POST", "/api/v1/auth/register", { body: { username: name, password } })).status).toBe(201);
	const token = (await c("POST", "/api/v1/auth/login", { body: { login: payer, password } })).body.accessToken;
	const payerId = (await c("GET", "/api/v1/me", { token })).body.id;
	await cn.broker.call("sv-money.adjust", { userId: payerId, amount: "5000", currency: "EUR", reason: "contract test", operator });
	const key = () => ({ "Idempotency-Key": randomUUID() });

	expect((await c("GET", "/api/v1/wallet", { token })).status).toBe(200);
	expect((await c("GET", "/api/v1/wallet")).status).toBe(401);
	expect((await c("GET", "/api/v1/wallet/entries?limit=2", { token })).status).toBe(200);
	expect((await c("GET", "/api/v1/wallet/entries?limit=101", { token })).status).toBe(400);

	const transfer = { to: payee, amount: "1000", currency: "EUR" };
	const once = key();
	const sent = await c("POST", "/api/v1/wallet/transfers", { token, body: transfer, headers: once });
	expect(sent.status).toBe(201);
	expect((await c("POST", "/api/v1/wallet/transfers", { token, body: transfer, headers: once })).status).toBe(200);
	expect((await c("POST", "/api/v1/wallet/transfers", { token, body: transfer })).status).toBe(400);
	expect((await c("POST", "/api/v1/wallet/transfers", { token, body: { ...transfer, amount: "0" }, headers: key() })).status).toBe(422);
	expect((await c("POST", "/api/v1/wallet/transfers", { token, body: { ...transfer, to: "nobody-at-all" }, headers: key() })).status).toBe(404);
	expect((await c("GET", `/api/v1/wallet/transfers/${sent.body.id}`, { token })).status).toBe(200);
	expect((await c("GET", `/api/v1/wallet/transfers/${randomUUID()}`, { token })).status).toBe(404);

	const hold = { to: payee, amount: "500", currency: "EUR" };
	const placing = key();
	const placed = await c("POST", "/api/v1/wallet/holds", { token, body: hold, headers: placing });
	expect(placed.status).toBe(201);
	expect((await c("POST", "/api/v1/wallet/holds", { token, body: hold, headers: placing })).status).toBe(200);
	expect((await c("GET", `/api/v1/wallet/holds/${placed.body.id}`, { token })).status).toBe(200);
	expect((await c("GET", `/api/v1/wallet/holds/${randomUUID()}`, { token })).status).toBe(404);
	expect((await c("POST", `/api/v1/wallet/holds/${placed.body.id}/capture`, { token })).status).toBe(200);
	expect((await c("POST", `/api/v1/wallet/holds/${placed.body.id}/capture`, { token })).status).toBe(409);
	const voiding = (await c("POST", "/api/v1/wallet/holds", { token, body: hold, headers: key() })).body.id;
	expect((await c("POST", `/api/v1/wallet/holds/${voiding}/void`, { token })).status).toBe(200);
}

/** An event stream's answer held to its operation (its status and media type), then closed. */
async function callStream(gateway: GatewayName, path: string, opts: { token?: string; lastEventId?: string } = {}): Promise<number> {
	const { stream, refused } = await openEventStream(gatewayUrl(cn.broker, gateway), path, opts);
	check(gateway, "GET", path, refused ?? { status: stream!.status, headers: stream!.headers, body: undefined, text: "" });
	stream?.close();
	return stream?.status ?? refused!.status;
}

/** The caller's notices, as every gateway serves them: each operation's success, and refusals of each kind. */
async function noticeRoutes(gateway: GatewayName): Promise<void> {
	const c = (method: string, path: string, opts?: Parameters<typeof http>[3]) => call(gateway, method, path, opts);
	const password = "contract notices 2026";
	const name = `nt${gateway.slice(4)}`;
	expect((await c("POST", "/api/v1/auth/register", { body: { username: name, password } })).status).toBe(201);
	const token = (await c("POST", "/api/v1/auth/login", { body: { login: name, password } })).body.accessToken;
	const userId = (await c("GET", "/api/v1/me", { token })).body.id;
	const { notice } = await cn.broker.call<{ notice: { id: string } }, unknown>("sv-notice.send", {
		userId,
		category: "account",
		template: "move-completed",
		data: { region: "cn-east" },
		idempotencyKey: randomUUID()
	});

	expect((await c("GET", "/api/v1/me/notices?limit=5", { token })).status).toBe(200);
	expect((await c("GET", "/api/v1/me/notices?limit=101", { token })).status).toBe(400);
	expect((await c("GET", "/api/v1/me/notices")).status).toBe(401);
	expect((await c("GET", "/api/v1/me/notices/unread-count", { token })).status).toBe(200);
	expect(await callStream(gateway, "/api/v1/me/notices/stream", { token })).toBe(200);
	expect(await callStream(gateway, "/api/v1/me/notices/stream", { token, lastEventId: "0" })).toBe(200);
	expect(await callStream(gateway, "/api/v1/me/notices/stream", { token, lastEventId: "x" })).toBe(400);
	expect(await callStream(gateway, "/api/v1/me/notices/stream")).toBe(401);
	expect((await c("POST", `/api/v1/me/notices/${notice.id}/read`, { token })).status).toBe(200);
	expect((await c("POST", `/api/v1/me/notices/${randomUUID()}/read`, { token })).status).toBe(404);
	expect((await c("POST", "/api/v1/me/notices/read-all", { token })).status).toBe(200);
	expect((await c("DELETE", `/api/v1/me/notices/${notice.id}`, { token })).status).toBe(204);
	expect((await c("DELETE", `/api/v1/me/notices/${notice.id}`, { token })).status).toBe(404);

	const prefs = (await c("GET", "/api/v1/me/notice-preferences", { token })).body;
	expect((await c("PUT", "/api/v1/me/notice-preferences", { token, body: { ...prefs, locale: "de" } })).status).toBe(200);
	const securityOff = { ...prefs, channels: { ...prefs.channels, inbox: { ...prefs.channels.inbox, security: false } } };
	expect((await c("PUT", "/api/v1/me/notice-preferences", { token, body: securityOff })).status).toBe(422);
	expect((await c("PUT", "/api/v1/me/notice-preferences", { token, body: { locale: "de" } })).status).toBe(400);
}

/** The caller's files, as every gateway serves them: each operation's success, and refusals of each kind. */
async function fileRoutes(gateway: GatewayName): Promise<void> {
	const c = (method: string, path: string, opts?: Parameters<typeof http>[3]) => call(gateway, method, path, opts);
	const password = "contract files 2026";
	const name = `fl${gateway.slice(4)}`;
	expect((await c("POST", "/api/v1/auth/register", { body: { username: name, password } })).status).toBe(201);
	const token = (await c("POST", "/api/v1/auth/login", { body: { login: name, password } })).body.accessToken;
	const base = gatewayUrl(cn.broker, gateway);
	const send = async (method: string, path: string, init: RequestInit) => {
		const res = await answerOf(await fetch(`${base}${path}`, { method, ...init }));
		check(gateway, method, path, res);
		return res;
	};
	const upload = (bytes: string, headers: Record<string, string>) =>
		send("POST", "/api/v1/files", { headers: { authorization: `Bearer ${token}`, "x-file-name": "contract.txt", ...headers }, body: bytes });

	const up = await upload("a contract's text", { "content-type": "text/plain" });
	expect(up.status).toBe(201);
	expect((await upload("not a picture", { "content-type": "image/png" })).status).toBe(415);
	expect((await upload("no name", { "x-file-name": "" })).status).toBe(400);
	expect((await c("GET", "/api/v1/files?limit=5", { token })).status).toBe(200);
	expect((await c("GET", "/api/v1/files?limit=101", { token })).status).toBe(400);
	const file = `/api/v1/files/${up.body.id}`;
	expect((await send("GET", file, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
	expect((await send("GET", file, { headers: { authorization: `Bearer ${token}`, range: "bytes=0-3" } })).status).toBe(206);
	expect((await send("GET", file, { headers: { authorization: `Bearer ${token}`, "if-none-match": `"${up.body.sha256}"` } })).status).toBe(304);
	expect((await send("GET", file, { headers: { authorization: `Bearer ${token}`, range: "bytes=999-" } })).status).toBe(416);
	expect((await c("GET", `/api/v1/files/${randomUUID()}`, { token })).status).toBe(404);
	const link = await c("POST", `${file}/links`, { token, body: { expiresIn: 60 } });
	expect(link.status).toBe(201);
	expect((await send("GET", link.body.url, {})).status).toBe(200);
	expect((await c("GET", `${link.body.url.slice(0, -2)}xx`)).status).toBe(403);
	expect((await c("DELETE", file, { token })).status).toBe(204);
	expect((await c("DELETE", file, { token })).status).toBe(404);
}

describe("every documented answer matches its OpenAPI document", () => {
	it("the common routes, on every gateway", async () => {
		for (const gateway of NAMES) await commonRoutes(gateway);
	}, 60_000);

	it("the wallet routes, on every gateway", async () => {
		const operator = (await call("api-cms", "POST", "/api/v1/auth/register", { body: { username: "contract-treasurer", password: "counts money 2026" } })).body
			.id;
		for (const gateway of NAMES) await walletRoutes(gateway, operator);
	}, 60_000);

	it("the notice routes and the notice stream, on every gateway", async () => {
		for (const gateway of NAMES) await noticeRoutes(gateway);
	}, 60_000);

	it("the file routes, on every gateway", async () => {
		for (const gateway of NAMES) await fileRoutes(gateway);
	}, 60_000);

	it("the staff routes of api-cms, for a plain user (403) and an admin", async () => {
		const c = (method: string, path: string, opts?: Parameters<typeof http>[3]) => call("api-cms", method, path, opts);
		const admin = (await c("POST", "/api/v1/auth/register", { body: { username: "contract-boss", password: "in charge 2026" } })).body;
		await cn.broker.call("auth-rbac.grant", { userId: admin.id, role: "admin" });
		const token = (await c("POST", "/api/v1/auth/login", { body: { login: "contract-boss", password: "in charge 2026" } })).body.accessToken;
		const plain = (await c("POST", "/api/v1/auth/register", { body: { username: "contract-plain", password: "just a user 2026" } })).body;
		const plainToken = (await c("POST", "/api/v1/auth/login", { body: { login: "contract-plain", password: "just a user 2026" } })).body.accessToken;
		const nobody = "0".repeat(26);

		expect((await c("GET", "/api/v1/admin/users", { token: plainToken })).status).toBe(403);
		expect((await c("GET", "/api/v1/admin/notices/dead-letters", { token: plainToken })).status).toBe(403);
		expect((await c("GET", "/api/v1/admin/users?q=contract", { token })).status).toBe(200);
		expect((await c("GET", "/api/v1/admin/users?pageSize=101", { token })).status).toBe(400);
		expect((await c("GET", "/api/v1/admin/users?region=mars-1", { token })).status).toBe(400);
		expect((await c("GET", `/api/v1/admin/users/${admin.id}`, { token })).status).toBe(200);
		expect((await c("GET", `/api/v1/admin/users/${nobody}`, { token })).status).toBe(404);
		const move = await c("POST", `/api/v1/admin/users/${plain.id}/move`, { token, body: { region: "ap-south" } });
		expect(move.status).toBe(202);
		await within(async () => (await c("GET", `/api/v1/admin/moves/${move.body.moveId}`, { token })).body.state === "moved", 15_000);
		expect((await c("GET", `/api/v1/admin/moves/${randomUUID()}`, { token })).status).toBe(404);
		expect((await c("POST", `/api/v1/admin/users/${nobody}/move`, { token, body: { region: "ap-south" } })).status).toBe(404);
		expect((await c("GET", "/api/v1/admin/regions", { token })).status).toBe(200);
		expect((await c("GET", `/api/v1/admin/users/${plain.id}/files`, { token })).status).toBe(200);
		expect((await c("GET", `/api/v1/admin/users/${plain.id}/files?limit=0`, { token })).status).toBe(400);
		expect((await c("GET", "/api/v1/admin/roles", { token })).status).toBe(200);
		expect((await c("GET", "/api/v1/admin/roles/ops", { token })).status).toBe(200);
		expect((await c("GET", "/api/v1/admin/roles/nosuchrole", { token })).status).toBe(404);
		expect((await c("POST", "/api/v1/admin/roles/ops/permissions", { token, body: { resource: "contracts", action: "read" } })).status).toBe(200);
		expect((await c("DELETE", "/api/v1/admin/roles/ops/permissions/contracts/read", { token })).status).toBe(204);
		expect((await c("GET", `/api/v1/admin/users/${admin.id}/roles`, { token })).status).toBe(200);
		expect((await c("PUT", `/api/v1/admin/users/${plain.id}/roles/support`, { token })).status).toBe(200);
		expect((await c("PUT", `/api/v1/admin/users/${plain.id}/roles/nosuchrole`, { token })).status).toBe(404);
		expect((await c("DELETE", `/api/v1/admin/users/${plain.id}/roles/support`, { token })).status).toBe(204);
		expect((await c("DELETE", `/api/v1/admin/users/${plain.id}/roles/user`, { token })).status).toBe(400);

		// The wallet's staff routes, sv-money answering from the user's new home.
		const wallet = `/api/v1/admin/users/${plain.id}/wallet`;
		const adjustment = { amount: "2500", currency: "SGD", reason: "contract test" };
		expect((await c("POST", `${wallet}/adjustments`, { token, body: adjustment })).status).toBe(201);
		expect((await c("POST", `${wallet}/adjustments`, { token, body: { ...adjustment, amount: "0" } })).status).toBe(422);
		expect((await c("POST", `${wallet}/adjustments`, { token, body: { ...adjustment, amount: "-2501" } })).status).toBe(422);
		expect((await c("POST", `${wallet}/adjustments`, { token, body: { ...adjustment, reason: undefined } })).status).toBe(400);
		expect((await c("POST", `/api/v1/admin/users/${nobody}/wallet/adjustments`, { token, body: adjustment })).status).toBe(404);
		expect((await c("GET", wallet, { token })).status).toBe(200);
		expect((await c("POST", `${wallet}/freeze`, { token, body: { reason: "contract test" } })).status).toBe(200);
		expect((await c("POST", `${wallet}/unfreeze`, { token, body: {} })).status).toBe(200);
		expect((await c("GET", "/api/v1/admin/wallet/reconciliation", { token })).status).toBe(200);
		expect((await c("GET", "/api/v1/admin/wallet/reconciliation?region=ap-south", { token })).status).toBe(200);
		expect((await c("GET", "/api/v1/admin/wallet/reconciliation?region=mars-1", { token })).status).toBe(400);

		// The notice channels' dead letters, with one left in cn-east as a webhook that kept failing leaves it.
		const dlq = "/api/v1/admin/notices/dead-letters";
		const dead = await deadNoticeLetter(cn.broker, { userId: nobody, title: "t" });
		expect((await c("GET", `${dlq}?limit=5`, { token })).body.items.map((d: { id: string }) => d.id)).toContain(dead);
		expect((await c("GET", `${dlq}?region=mars-1`, { token })).status).toBe(400);
		expect((await c("POST", `${dlq}/${randomUUID()}/replay`, { token, body: {} })).status).toBe(404);
		expect((await c("POST", `${dlq}/${dead}/replay`, { token, body: {} })).status).toBe(200);

		// The audit log (issue #15): every region's records, one region's, the export, a chain's check, refusals.
		expect((await c("GET", "/api/v1/admin/audit?limit=5", { token })).status).toBe(200);
		expect((await c("GET", "/api/v1/admin/audit?region=ap-south&action=auth.login", { token })).status).toBe(200);
		expect((await c("GET", "/api/v1/admin/audit?from=yesterday", { token })).status).toBe(400);
		expect((await c("GET", "/api/v1/admin/audit?from=2026-02-01&to=2026-01-01", { token })).status).toBe(422);
		expect((await c("GET", "/api/v1/admin/audit/export?limit=5", { token })).status).toBe(200);
		expect((await c("GET", "/api/v1/admin/audit/verify?region=eu-central", { token })).status).toBe(200);

		// Announcements: to cn-east's users, then its progress.
		const announcements = "/api/v1/admin/announcements";
		const announced = await c("POST", announcements, { token, body: { title: "Contract", body: "Hello all", audience: { regions: ["cn-east"] } } });
		expect(announced.status).toBe(202);
		expect((await c("GET", `${announcements}/${announced.body.id}`, { token })).status).toBe(200);
		expect((await c("GET", `${announcements}/${randomUUID()}`, { token })).status).toBe(404);
		expect((await c("POST", announcements, { token, body: { title: "t", body: "b", audience: { regions: ["us-west"] } } })).status).toBe(400);
		expect((await c("POST", announcements, { token, body: { title: "x".repeat(201), body: "b", audience: {} } })).status).toBe(400);
	}, 60_000);

	it("the admin console and what it reads of api-cms: the caller's permissions, a user's sessions and entries, region nodes and counts", async () => {
		const c = (method: string, path: string, opts?: Parameters<typeof http>[3]) => call("api-cms", method, path, opts);
		const ops = (await c("POST", "/api/v1/auth/register", { body: { username: "contract-ops", password: "keeps it running 2026" } })).body;
		await cn.broker.call("auth-rbac.grant", { userId: ops.id, role: "ops" });
		const logIn = { body: { login: "contract-ops", password: "keeps it running 2026" } };
		const token = (await c("POST", "/api/v1/auth/login", logIn)).body.accessToken;
		// One session per client type: a second one from the app.
		await call("api-app", "POST", "/api/v1/auth/login", logIn);

		expect((await c("GET", "/api/v1/me/permissions", { token })).body.roles).toContain("support");
		expect((await c("GET", "/api/v1/me/permissions")).status).toBe(401);
		const sessions = await c("GET", `/api/v1/admin/users/${ops.id}/sessions`, { token });
		const other = sessions.body.find((s: { client: string }) => s.client === "app").sid;
		expect((await c("DELETE", `/api/v1/admin/users/${ops.id}/sessions/${other}`, { token })).status).toBe(204);
		expect((await c("DELETE", `/api/v1/admin/users/${ops.id}/sessions/${randomUUID()}`, { token })).status).toBe(404);
		expect((await c("GET", `/api/v1/admin/users/${"0".repeat(26)}/sessions`, { token })).status).toBe(404);
		expect((await c("GET", `/api/v1/admin/users/${ops.id}/wallet/entries?limit=5`, { token })).status).toBe(200);
		expect((await c("GET", `/api/v1/admin/users/${ops.id}/wallet/entries?limit=0`, { token })).status).toBe(400);
		expect((await c("GET", "/api/v1/admin/regions/users", { token })).body.total).toBeGreaterThan(0);
		expect((await c("GET", "/api/v1/admin/regions/eu-central/nodes", { token })).body.nodes).not.toEqual([]);
		expect((await c("GET", "/api/v1/admin/regions/mars-1/nodes", { token })).status).toBe(400);

		// The console's page and files, from a folder standing in for its build (test/browser/ drives the real one).
		const built = await mkdtemp(join(tmpdir(), "console-"));
		await writeFile(join(built, "index.html"), "<!DOCTYPE html><title>console</title>");
		await writeFile(join(built, "favicon.svg"), "<svg xmlns='http://www.w3.org/2000/svg'/>");
		process.env.EDGEHOME_CONSOLE_DIR = built;
		expect((await c("GET", "/console")).status).toBe(200);
		expect((await c("GET", "/console/favicon.svg")).status).toBe(200);
		expect((await c("GET", "/console/index-nothing.js")).status).toBe(404);
		process.env.EDGEHOME_CONSOLE_DIR = join(built, "missing");
		expect((await c("GET", "/console")).body.error.code).toBe("CONSOLE_NOT_BUILT");
		delete process.env.EDGEHOME_CONSOLE_DIR;
		await rm(built, { recursive: true });
	});

	it("the WeChat login of api-wx: a first login, a refused code, WeChat's rate limit", async () => {
		const c = (body: unknown) => call("api-wx", "POST", "/api/v1/wx/login", { body });
		expect((await c({ code: "ok_contract1" })).status).toBe(200);
		expect((await c({ code: "ok_contract1" })).status).toBe(401);
		wechat.codes.set("busy", { errcode: 45011 });
		expect((await c({ code: "busy" })).status).toBe(429);
		wechat.codes.set("broken", "html");
		expect((await c({ code: "broken" })).status).toBe(502);
	});

	it("the rate limit: a burst past api-app's per-IP limit gets a documented 429", async () => {
		let res: HttpAnswer | undefined;
		for (let i = 0; i <= APP_IP_LIMIT && res?.status !== 429; i++) res = await call("api-app", "GET", "/healthz");
		expect(res?.status).toBe(429);
	});

	it("reached every documented operation's success on every gateway", () => {
		for (const gateway of NAMES) {
			const missing = Object.values(docs[gateway].paths)
				.flatMap(item => Object.values(item))
				.filter(op => !Object.keys(op.responses).some(status => status.startsWith("2") && answered.has(`${gateway} ${op.operationId} ${status}`)))
				.map(op => op.operationId);
			expect({ gateway, missing }).toEqual({ gateway, missing: [] });
		}
	});
});
