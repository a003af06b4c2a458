import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../../../app/node.ts";
import authJwt from "../../../../services/auth-jwt/auth-jwt.service.ts";
import type { WxTokens } from "../../../../services/auth-jwt/tokens.ts";
import type { EmbeddedRegions } from "../../../harness/embedded-regions.ts";
import { everyFeedHeard, REGION_IDS as ids, startEmbeddedRegions } from "../../../harness/embedded-regions.ts";
import { failureOf } from "../../../harness/waiting.ts";
import type { WechatServer } from "../../../harness/wechat-server.ts";
import { startWechatServer } from "../../../harness/wechat-server.ts";

const TIMEOUT_MS = 300;
const nodes: Record<string, RegionNode> = {};
let cluster: EmbeddedRegions | undefined;
let wx: WechatServer;
const call = <T = any>(from: string, action: string, params: unknown) => nodes[from]!.broker.call<T, unknown>(action, params);
const wxLogin = (from: string, code: string) => call<WxTokens>(from, "auth-jwt.wxLogin", { code });

/** Every users row of every region, by region. */
async function rows(): Promise<Record<string, { id: string; username: string; email_enc: string | null; phone_enc: string | null; country: string | null }[]>> {
	const out: Record<string, any[]> = {};
	for (const id of ids) out[id] = await nodes[id]!.stores.sql.db.selectFrom("users").selectAll().execute();
	return out;
}
const userCount = async () => Object.values(await rows()).flat().length;

/** An error as text: what a client could see of it. */
const errorText = (err: any) => JSON.stringify({ message: err.message, type: err.type, code: err.code, data: err.data });

beforeAll(async () => {
	wx = await startWechatServer();
	const schema = { ...authJwt, settings: { ...authJwt.settings, wx: { baseUrl: wx.url, appId: wx.appId, secret: wx.secret, timeoutMs: TIMEOUT_MS } } };
	cluster = await startEmbeddedRegions({ namespacePrefix: "wxlogin-", services: ["sv-region", "sv-user"], schemas: [schema] });
	Object.assign(nodes, cluster.nodes);
	await everyFeedHeard(cluster!, 5000);
});

afterAll(async () => {
	await cluster?.stop();
	await wx?.stop();
});

describe("auth-jwt.wxLogin", () => {
	it("registers on the first login, homed in the region that received it, with the openid reserved", async () => {
		const before = await userCount();
		const t = await wxLogin("ap-south", "ok_oFirstLogin01");
		expect(t).toMatchObject({ created: true, region: "ap-south", tokenType: "Bearer", expiresIn: 900 });
		expect(decodeJwt(t.accessToken)).toMatchObject({ sub: t.userId, rgn: "ap-south", cli: "wx", sid: t.sid });
		expect(await call("eu-central", "sv-region.resolve", { kind: "wechat", value: "oFirstLogin01" })).toEqual({ userId: t.userId });
		expect(await call("cn-east", "sv-region.lookup", { userId: t.userId })).toMatchObject({ region: "ap-south", epoch: 1 });
		const all = await rows();
		expect(await userCount()).toBe(before + 1);
		expect(all["ap-south"]!.filter(r => r.id === t.userId)).toEqual([
			expect.objectContaining({ username: expect.stringMatching(/^wx_[a-z0-9]{10}$/), email_enc: null, phone_enc: null, country: null })
		]);
		// The openid is only in the directory's blind index, never in a row.
		expect(JSON.stringify(all)).not.toContain("oFirstLogin01");
		const sent = wx.requests.at(-1)!;
		expect(sent).toMatchObject({
			method: "GET",
			path: "/sns/jscode2session",
			query: { appid: wx.appId, secret: wx.secret, js_code: "ok_oFirstLogin01", grant_type: "authorization_code" }
		});
	});

	it("logs the same user in with a later code, from another region, at its home", async () => {
		wx.codes.set("second-code-1", { openid: "oFirstLogin01" });
		const first = await call<{ userId: string }>("cn-east", "sv-region.resolve", { kind: "wechat", value: "oFirstLogin01" });
		const before = await userCount();
		const t = await wxLogin("eu-central", "second-code-1");
		expect(t).toMatchObject({ created: false, userId: first.userId, region: "ap-south" });
		expect(await userCount()).toBe(before);
	});

	it("issues wx tokens: accepted for client wx, refused for app", async () => {
		const t = await wxLogin("cn-east", "ok_oClientType01");
		for (const r of ids) expect((await call(r, "auth-jwt.verify", { token: t.accessToken, client: "wx" })).sub).toBe(t.userId);
		expect(await failureOf(call("cn-east", "auth-jwt.verify", { token: t.accessToken, client: "app" }))).toMatchObject({ type: "TOKEN_CLIENT", code: 401 });
		expect((await call<{ client: string }[]>("eu-central", "auth-jwt.sessions", { userId: t.userId })).map(s => s.client)).toEqual(["wx"]);
	});

	it("answers an invalid or spent code with 401 WX_CODE_INVALID and stores nothing", async () => {
		const before = await userCount();
		expect(await failureOf(wxLogin("cn-east", "never-issued"))).toMatchObject({ type: "WX_CODE_INVALID", code: 401 });
		// ok_oClientType01 was spent by the test before.
		expect(await failureOf(wxLogin("cn-east", "ok_oClientType01"))).toMatchObject({ type: "WX_CODE_INVALID", code: 401 });
		expect(await userCount()).toBe(before);
	});

	it("answers WeChat's frequency limit with 429 RATE_LIMITED and a retry-after", async () => {
		wx.codes.set("limited-1", { errcode: 45011, errmsg: "api minute-quota reach limit" });
		expect(await failureOf(wxLogin("ap-south", "limited-1"))).toMatchObject({ type: "RATE_LIMITED", code: 429, data: { retryAfter: 60 } });
	});

	it("answers 504 UPSTREAM_TIMEOUT when WeChat does not answer, within the timeout and a margin", async () => {
		wx.codes.set("hang-1", "hang");
		const started = Date.now();
		expect(await failureOf(wxLogin("cn-east", "hang-1"))).toMatchObject({ type: "UPSTREAM_TIMEOUT", code: 504 });
		expect(Date.now() - started).toBeGreaterThanOrEqual(TIMEOUT_MS - 10);
		expect(Date.now() - started).toBeLessThan(TIMEOUT_MS + 700);
	});

	it("answers 502 UPSTREAM_FAILED for HTML, JSON without an openid, HTTP 500 and system busy", async () => {
		wx.codes.set("html-1", "html");
		wx.codes.set("foo-1", "no-openid");
		wx.codes.set("http500-1", "http-500");
		wx.codes.set("busy-1", { errcode: -1, errmsg: "system busy" });
		const before = await userCount();
		for (const code of ["html-1", "foo-1", "http500-1", "busy-1"])
			expect(await failureOf(wxLogin("eu-central", code))).toMatchObject({ type: "UPSTREAM_FAILED", code: 502 });
		expect(await userCount()).toBe(before);
	});

	it("never shows the app secret: not in errors (even when WeChat echoes it), not in service listings", async () => {
		wx.codes.set("echo-1", { errcode: -1, errmsg: `system error for secret=${wx.secret}` });
		wx.codes.set("hang-2", "hang");
		wx.codes.set("limited-2", { errcode: 45011, errmsg: `quota, secret=${wx.secret}` });
		for (const code of ["echo-1", "hang-2", "limited-2", "never-issued-2"]) {
			const err = await failureOf(wxLogin("cn-east", code));
			expect(err.type).not.toBe("(succeeded)");
			expect(errorText(err)).not.toContain(wx.secret);
		}
		for (const r of ids) {
			const listed = JSON.stringify(await call(r, "$node.services", {}));
			expect(listed).toContain(wx.appId);
			expect(listed).not.toContain(wx.secret);
		}
	});

	it("registers one user when first logins of one openid race, on one node and across regions", async () => {
		for (let round = 0; round < 4; round++) {
			const openid = `oRacingUser0${round}`;
			const codes = ["a", "b", "c", "d"].map(c => `race-${round}-${c}`);
			for (const code of codes) wx.codes.set(code, { openid });
			const before = await userCount();
			const from = ["cn-east", "cn-east", "ap-south", "eu-central"];
			const results = await Promise.all(codes.map((code, i) => wxLogin(from[i]!, code)));
			const ids_ = new Set(results.map(t => t.userId));
			expect(ids_.size).toBe(1);
			expect(results.filter(t => t.created)).toHaveLength(1);
			expect(await userCount()).toBe(before + 1);
			expect(await call("ap-south", "sv-region.resolve", { kind: "wechat", value: openid })).toEqual({ userId: results[0]!.userId });
			// Every racer holds a working session of the one user (one wx session at a time: the last one opened stays).
			const live = await call<{ client: string }[]>("cn-east", "auth-jwt.sessions", { userId: results[0]!.userId });
			expect(live).toHaveLength(1);
		}
	});

	it("waits for a user whose registration by another login has reserved the openid but not yet written the row", async () => {
		// The first half of a registration, as another region's login would have done it.
		const reserved = await call<{ userId: string }>("eu-central", "sv-region.register", { identities: [{ kind: "wechat", value: "oHalfDone001" }] });
		wx.codes.set("half-1", { openid: "oHalfDone001" });
		const login = wxLogin("cn-east", "half-1");
		await new Promise(r => setTimeout(r, 300));
		await call("eu-central", "sv-user.create", { userId: reserved.userId, username: "wx_halfdone01", passwordHash: "scrypt$unusable" });
		expect(await login).toMatchObject({ userId: reserved.userId, created: false, region: "eu-central" });
	});

	it("rejects extra fields, bad characters and overlong codes with 422", async () => {
		expect(await failureOf(call("cn-east", "auth-jwt.wxLogin", { code: "ok_oExtraFld01", client: "app" }))).toMatchObject({
			type: "VALIDATION_ERROR",
			code: 422
		});
		expect(await failureOf(call("cn-east", "auth-jwt.wxLogin", { code: "ok:oBadChars01" }))).toMatchObject({ type: "VALIDATION_ERROR", code: 422 });
		expect(await failureOf(call("cn-east", "auth-jwt.wxLogin", { code: `ok_${"o".repeat(126)}` }))).toMatchObject({ type: "VALIDATION_ERROR", code: 422 });
		expect(await failureOf(call("cn-east", "auth-jwt.wxLogin", {}))).toMatchObject({ type: "VALIDATION_ERROR", code: 422 });
		const { userId } = await call<{ userId: string }>("cn-east", "sv-region.resolve", { kind: "wechat", value: "oFirstLogin01" });
		expect(await failureOf(call("cn-east", "auth-jwt.openSession", { userId, client: "wx", extra: 1 }))).toMatchObject({ type: "VALIDATION_ERROR", code: 422 });
		expect(await failureOf(call("cn-east", "sv-user.registerWechat", { openid: "oExtraField01", username: "chosen" }))).toMatchObject({
			type: "VALIDATION_ERROR",
			code: 422
		});
	});

	it("sv-user.registerWechat refuses an openid that has a user already", async () => {
		expect(await failureOf(call("eu-central", "sv-user.registerWechat", { openid: "oFirstLogin01" }))).toMatchObject({ type: "WECHAT_TAKEN", code: 409 });
	});

	it("keeps openSession and registerWechat away from gateways (visibility public)", () => {
		const visibility = (action: string) =>
			nodes["cn-east"]!.broker.registry.getActionList({ onlyLocal: true }).find((a: { name: string }) => a.name === action)?.action?.visibility;
		expect(visibility("auth-jwt.openSession")).toBe("public");
		expect(visibility("sv-user.registerWechat")).toBe("public");
		expect(visibility("auth-jwt.wxLogin")).toBeUndefined();
	});
});

describe("auth-jwt.wxLogin without WeChat settings", () => {
	let bare: EmbeddedRegions | undefined;

	beforeAll(async () => {
		// The shipped schema, with settings from this process's environment, which names no WeChat app.
		bare = await startEmbeddedRegions({ namespacePrefix: "wxnone-", services: ["sv-region", "sv-user", "auth-jwt"] });
	});

	afterAll(() => bare?.stop());

	it("starts, and answers 503 WX_NOT_CONFIGURED without calling WeChat", async () => {
		const sent = wx.requests.length;
		expect(await failureOf(bare!.nodes["cn-east"]!.broker.call("auth-jwt.wxLogin", { code: "ok_oNotConfig01" }))).toMatchObject({
			type: "WX_NOT_CONFIGURED",
			code: 503
		});
		expect(wx.requests.length).toBe(sent);
	});
});
