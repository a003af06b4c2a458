import type { Env } from "../../regions/runtime/env.ts";
import { EnvError, envInt, envString } from "../../regions/runtime/env.ts";
import { RateLimitedError, UpstreamFailedError, UpstreamTimeoutError, WxCodeInvalidError } from "./errors.ts";

/** Where and as whom this deployment exchanges mini-program login codes. */
export interface WxSettings {
	baseUrl: string;
	appId: string;
	secret: string;
	timeoutMs: number;
}

export interface WxSession {
	openid: string;
	unionid?: string;
}

/** openid and unionid as WeChat issues them (28 characters today), with room to grow and nothing else. */
export const WX_ID = /^[A-Za-z0-9_-]{6,64}$/;
/** A jscode2session answer is ~100 bytes; anything near this is not one. */
export const MAX_BODY_BYTES = 64 * 1024;
/** Invalid code, code already used, code missing, user refused by WeChat's risk control: the client needs a new code. */
const CODE_REFUSED = new Set([40029, 40163, 41008, 40226]);
const FREQUENCY_LIMIT = 45011;
/** WeChat counts that limit per minute. */
const RATE_LIMIT_RETRY_S = 60;

export function wxSettingsFromEnv(env: Env = process.env): WxSettings {
	const baseUrl = envString(env, "EDGEHOME_WX_API_URL", "https://api.weixin.qq.com");
	if (!URL.canParse(baseUrl) || !["http:", "https:"].includes(new URL(baseUrl).protocol)) throw new EnvError("EDGEHOME_WX_API_URL", baseUrl, "an http(s) URL");
	return {
		baseUrl,
		appId: envString(env, "EDGEHOME_WX_APPID", ""),
		secret: envString(env, "EDGEHOME_WX_SECRET", ""),
		timeoutMs: envInt(env, "EDGEHOME_WX_TIMEOUT_MS", 3000, 100, 30_000)
	};
}

export function wxConfigured(s: WxSettings): boolean {
	return s.appId !== "" && s.secret !== "";
}

/** The body as text, or undefined when it is larger than MAX_BODY_BYTES (then it is not read further). */
async function readCapped(res: Response): Promise<string | undefined> {
	if (Number(res.headers.get("content-length")) > MAX_BODY_BYTES) {
		await res.body?.cancel();
		return undefined;
	}
	if (!res.body) return "";
	const reader = res.body.getReader();
	const chunks: Uint8Array[] = [];
	let size = 0;
	for (;;) {
		const { done, value } = await reader.read();
		if (done) break;
		size += value.byteLength;
		if (size > MAX_BODY_BYTES) {
			await reader.cancel();
			return undefined;
		}
		chunks.push(value);
	}
	return Buffer.concat(chunks).toString("utf8");
}

/**
 * Exchanges a wx.login() code at jscode2session for the user's openid (and unionid, when the app
 * is bound to an open platform account). Never retried: a code is single-use, and a request that
 * timed out may have spent it. Errors are not retryable for the same reason.
 */
export async function exchangeCode(settings: WxSettings, code: string): Promise<WxSession> {
	const url = new URL(`${settings.baseUrl.replace(/\/+$/, "")}/sns/jscode2session`);
	url.searchParams.set("appid", settings.appId);
	url.searchParams.set("secret", settings.secret);
	url.searchParams.set("js_code", code);
	url.searchParams.set("grant_type", "authorization_code");
	const signal = AbortSignal.timeout(settings.timeoutMs);
	let status: number;
	let text: string | undefined;
	try {
		const res = await fetch(url, { signal, redirect: "error", headers: { accept: "application/json" } });
		status = res.status;
		if (!res.ok) await res.body?.cancel();
		else text = await readCapped(res);
	} catch {
		// The signal covers the body too: a reply that stalls halfway is a timeout as well.
		if (signal.aborted) throw new UpstreamTimeoutError(settings.timeoutMs);
		throw new UpstreamFailedError("unreachable");
	}
	if (status < 200 || status > 299) throw new UpstreamFailedError("http", { status });
	if (text === undefined) throw new UpstreamFailedError("too-large");
	let body: unknown;
	try {
		body = JSON.parse(text);
	} catch {
		throw new UpstreamFailedError("not-json");
	}
	if (!body || typeof body !== "object") throw new UpstreamFailedError("not-json");
	const { errcode, openid, unionid } = body as { errcode?: unknown; openid?: unknown; unionid?: unknown };
	if (typeof errcode === "number" && errcode !== 0) {
		if (CODE_REFUSED.has(errcode)) throw new WxCodeInvalidError(errcode);
		if (errcode === FREQUENCY_LIMIT) throw new RateLimitedError("too many WeChat logins; try again later", RATE_LIMIT_RETRY_S);
		throw new UpstreamFailedError("errcode", { errcode });
	}
	if (typeof openid !== "string" || !WX_ID.test(openid)) throw new UpstreamFailedError("no-openid");
	return typeof unionid === "string" && WX_ID.test(unionid) ? { openid, unionid } : { openid };
}
