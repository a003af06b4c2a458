import type { Context } from "moleculer";
import { WxNotConfiguredError } from "./errors.ts";
import type { Tokens, WxTokens } from "./tokens.ts";
import type { WxSettings } from "./wechat.ts";
import { exchangeCode, wxConfigured } from "./wechat.ts";

/** How long a WeChat login waits for a user that another login is still registering. */
const WX_SETTLE_MS = 2000;

/**
 * The WeChat mini-program login, at the region that received the request: the wx.login() code
 * becomes an openid at WeChat (wechat.ts), which finds the user or registers one (homed here);
 * the session opens at the home. No IP budget: WeChat limits code exchanges itself.
 */
export class WechatLogin {
	private readonly settings: WxSettings;
	private readonly warn: (message: string, data: unknown) => void;
	/** First logins of an openid under way on this node, which later ones join. */
	private readonly registering = new Map<string, Promise<string>>();

	constructor(settings: WxSettings, warn: (message: string, data: unknown) => void) {
		this.settings = settings;
		this.warn = warn;
	}

	async logIn(ctx: Context, code: string): Promise<WxTokens> {
		if (!wxConfigured(this.settings)) throw new WxNotConfiguredError();
		const { openid } = await exchangeCode(this.settings, code).catch((err: { code: number; type: string; data: unknown }) => {
			// Ours to fix (a wrong secret answers with an errcode too); the data names no secret.
			if (err.code >= 500) this.warn(`WeChat code exchange failed: ${err.type}`, err.data);
			throw err;
		});
		const { userId, created } = await this.user(ctx, openid);
		return { ...(await this.session(ctx, userId)), created };
	}

	/** The openid's user, registered on its first login; of concurrent first logins exactly one registers. */
	private async user(ctx: Context, openid: string): Promise<{ userId: string; created: boolean }> {
		for (let attempt = 1; ; attempt++) {
			const found = await ctx.call<{ userId: string }, unknown>("sv-region.resolve", { kind: "wechat", value: openid }).catch((err: { type?: string }) => {
				if (err.type === "USER_NOT_FOUND") return undefined;
				throw err;
			});
			if (found) return { userId: found.userId, created: false };
			let pending = this.registering.get(openid);
			const mine = !pending;
			if (!pending) {
				pending = ctx
					.call<{ id: string }, unknown>("sv-user.registerWechat", { openid })
					.then(u => u.id)
					.finally(() => this.registering.delete(openid));
				this.registering.set(openid, pending);
			}
			try {
				return { userId: await pending, created: mine };
			} catch (err) {
				// Another node registered this openid first (the directory lets exactly one): log that user in.
				if ((err as { type?: string }).type !== "WECHAT_TAKEN" || attempt >= 2) throw err;
			}
		}
	}

	/** Until the registering login has written the user's home entry and row, its home answers USER_NOT_FOUND. */
	private async session(ctx: Context, userId: string): Promise<Tokens> {
		const deadline = Date.now() + WX_SETTLE_MS;
		for (let wait = 50; ; wait *= 2) {
			try {
				return await ctx.call<Tokens, unknown>("auth-jwt.openSession", { userId, client: "wx" });
			} catch (err) {
				if ((err as { type?: string }).type !== "USER_NOT_FOUND" || Date.now() + wait > deadline) throw err;
				await new Promise(r => setTimeout(r, wait));
			}
		}
	}
}
