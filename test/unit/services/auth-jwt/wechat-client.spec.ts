import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { WxSettings } from "../../../../services/auth-jwt/wechat.ts";
import { exchangeCode, wxConfigured, wxSettingsFromEnv } from "../../../../services/auth-jwt/wechat.ts";
import { freePort } from "../../../harness/free-port.ts";
import { failureOf } from "../../../harness/waiting.ts";
import type { WechatServer } from "../../../harness/wechat-server.ts";
import { startWechatServer } from "../../../harness/wechat-server.ts";

let wx: WechatServer;
let settings: WxSettings;

beforeAll(async () => {
	wx = await startWechatServer();
	settings = { baseUrl: wx.url, appId: wx.appId, secret: wx.secret, timeoutMs: 300 };
	wx.codes.set("c-union", { openid: "oUnion_1234", unionid: "uUnion-5678" });
	wx.codes.set("c-bad-union", { openid: "oBadUnion1", unionid: "has spaces" });
	wx.codes.set("c-short-openid", { openid: "o1" });
	wx.codes.set("c-limited", { errcode: 45011, errmsg: "api minute-quota reach limit" });
	wx.codes.set("c-busy", { errcode: -1, errmsg: "system error" });
	wx.codes.set("c-blocked", { errcode: 40226, errmsg: "high risk user" });
	wx.codes.set("c-hang", "hang");
	wx.codes.set("c-stall", "stall-body");
	wx.codes.set("c-html", "html");
	wx.codes.set("c-foo", "no-openid");
	wx.codes.set("c-500", "http-500");
	wx.codes.set("c-huge", "huge");
});

afterAll(() => wx?.stop());

/** The error's type, code and data, and the whole of it as text (to look for the secret in). */
async function failure(p: Promise<unknown>) {
	const err = await failureOf(p);
	return { type: err.type, code: err.code, data: err.data, text: JSON.stringify({ ...err, message: (err as { message?: string }).message, stack: undefined }) };
}

describe("exchangeCode", () => {
	it("sends appid, secret, code and grant_type to jscode2session and returns the openid", async () => {
		expect(await exchangeCode(settings, "ok_oAbc-123_xyz")).toEqual({ openid: "oAbc-123_xyz" });
		expect(wx.requests.at(-1)).toEqual({
			method: "GET",
			path: "/sns/jscode2session",
			query: { appid: wx.appId, secret: wx.secret, js_code: "ok_oAbc-123_xyz", grant_type: "authorization_code" }
		});
	});

	it("returns a well-formed unionid and drops a malformed one", async () => {
		expect(await exchangeCode(settings, "c-union")).toEqual({ openid: "oUnion_1234", unionid: "uUnion-5678" });
		expect(await exchangeCode(settings, "c-bad-union")).toEqual({ openid: "oBadUnion1" });
	});

	it("keeps a path prefix of the base URL", async () => {
		await failureOf(exchangeCode({ ...settings, baseUrl: `${wx.url}/proxy/` }, "ok_oPrefix1"));
		expect(wx.requests.at(-1)!.path).toBe("/proxy/sns/jscode2session");
	});

	it("maps invalid, used and refused codes to 401 WX_CODE_INVALID", async () => {
		expect(await failure(exchangeCode(settings, "nobody-issued-this"))).toMatchObject({ type: "WX_CODE_INVALID", code: 401, data: { errcode: 40029 } });
		await exchangeCode(settings, "ok_oUsedTwice");
		expect(await failure(exchangeCode(settings, "ok_oUsedTwice"))).toMatchObject({ type: "WX_CODE_INVALID", code: 401, data: { errcode: 40163 } });
		expect(await failure(exchangeCode(settings, "c-blocked"))).toMatchObject({ type: "WX_CODE_INVALID", code: 401, data: { errcode: 40226 } });
	});

	it("maps WeChat's frequency limit to 429 RATE_LIMITED with a retry-after", async () => {
		expect(await failure(exchangeCode(settings, "c-limited"))).toMatchObject({ type: "RATE_LIMITED", code: 429, data: { retryAfter: 60 } });
	});

	it("maps system busy, HTTP errors, HTML, JSON without a valid openid and huge bodies to 502 UPSTREAM_FAILED", async () => {
		const cases = { "c-busy": "errcode", "c-500": "http", "c-html": "not-json", "c-foo": "no-openid", "c-short-openid": "no-openid", "c-huge": "too-large" };
		for (const [code, reason] of Object.entries(cases))
			expect(await failure(exchangeCode(settings, code))).toMatchObject({ type: "UPSTREAM_FAILED", code: 502, data: { reason } });
	});

	it("maps refused app credentials to 502: ours to fix, not the client's", async () => {
		expect(await failure(exchangeCode({ ...settings, secret: "wrong" }, "ok_oWrongSecret"))).toMatchObject({
			type: "UPSTREAM_FAILED",
			code: 502,
			data: { errcode: 40125 }
		});
		expect(await failure(exchangeCode({ ...settings, appId: "wx0" }, "ok_oWrongAppid"))).toMatchObject({
			type: "UPSTREAM_FAILED",
			code: 502,
			data: { errcode: 40013 }
		});
	});

	it("times out with 504 UPSTREAM_TIMEOUT, also when the body stalls after the headers", async () => {
		for (const code of ["c-hang", "c-stall"]) {
			const started = Date.now();
			expect(await failure(exchangeCode(settings, code))).toMatchObject({ type: "UPSTREAM_TIMEOUT", code: 504 });
			const took = Date.now() - started;
			expect(took).toBeGreaterThanOrEqual(290);
			expect(took).toBeLessThan(1000);
		}
	});

	it("maps an unreachable server to 502", async () => {
		expect(await failure(exchangeCode({ ...settings, baseUrl: `http://127.0.0.1:${await freePort()}` }, "ok_oNobodyHome"))).toMatchObject({
			type: "UPSTREAM_FAILED",
			code: 502,
			data: { reason: "unreachable" }
		});
	});

	it("never puts the secret into an error", async () => {
		const codes = ["nobody-issued-this", "c-limited", "c-busy", "c-500", "c-html", "c-foo", "c-huge", "c-hang"];
		for (const code of codes) expect((await failure(exchangeCode(settings, code))).text).not.toContain(wx.secret);
		expect((await failure(exchangeCode({ ...settings, baseUrl: `http://127.0.0.1:${await freePort()}` }, "x"))).text).not.toContain(wx.secret);
	});
});

describe("wxSettingsFromEnv", () => {
	it("defaults to WeChat's API and 3 s, unconfigured without appid and secret", () => {
		const s = wxSettingsFromEnv({});
		expect(s).toEqual({ baseUrl: "https://api.weixin.qq.com", appId: "", secret: "", timeoutMs: 3000 });
		expect(wxConfigured(s)).toBe(false);
		expect(wxConfigured(wxSettingsFromEnv({ EDGEHOME_WX_APPID: "wx1", EDGEHOME_WX_SECRET: "s" }))).toBe(true);
		expect(wxConfigured(wxSettingsFromEnv({ EDGEHOME_WX_APPID: "wx1" }))).toBe(false);
	});

	it("refuses a base URL that is not http(s) and a timeout out of range, naming the variable", () => {
		expect(() => wxSettingsFromEnv({ EDGEHOME_WX_API_URL: "ftp://x" })).toThrow(/EDGEHOME_WX_API_URL/);
		expect(() => wxSettingsFromEnv({ EDGEHOME_WX_API_URL: "not a url" })).toThrow(/EDGEHOME_WX_API_URL/);
		expect(() => wxSettingsFromEnv({ EDGEHOME_WX_TIMEOUT_MS: "5" })).toThrow(/EDGEHOME_WX_TIMEOUT_MS/);
		expect(wxSettingsFromEnv({ EDGEHOME_WX_TIMEOUT_MS: "1500" }).timeoutMs).toBe(1500);
	});
});
