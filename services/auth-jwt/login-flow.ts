import type { Context } from "moleculer";
import { audit } from "../../mixins/audit.mixin.ts";
import type { ClientType } from "../../regions/region.ts";
import { InvalidCredentialsError } from "./errors.ts";
import type { LoginGate } from "./login-gate.ts";
import type { Tokens } from "./tokens.ts";

export interface LoginParams {
	login: string;
	password: string;
	client: ClientType;
}

/** The channel sv-notice takes notices from (services/sv-notice): a producer never calls it in its request path. */
const NOTICE_CHANNEL = "notice.send";

/**
 * Tells the user of a sign-in from an IP their login never succeeded from: a security notice,
 * stored durably and sent later. A notice that cannot be stored is logged, never the login's failure.
 */
async function noticeNewLogin(ctx: Context<LoginParams>, tokens: Tokens, ip: string): Promise<void> {
	const notice = {
		userId: tokens.userId,
		category: "security",
		template: "new-login",
		data: { client: ctx.params.client, ip, at: new Date().toISOString() },
		idempotencyKey: `new-login:${tokens.sid}`
	};
	await ctx.broker.sendToChannel(NOTICE_CHANNEL, notice, { key: tokens.userId, ctx }).catch((err: Error) => {
		ctx.broker.logger.warn(`new-login notice for a session of ${tokens.userId} not stored: ${err.message}`);
	});
}

/**
 * A login at the region that received the request: the login gate (budgets of the client IP and
 * of the login string), then the password check and the session at the user's home
 * (auth-jwt.authenticate). An unknown login costs the same scrypt work and gets the same error as
 * a wrong password; only a wrong password spends the budgets.
 */
export async function logIn(ctx: Context<LoginParams>, gate: LoginGate, clientIp: string | undefined): Promise<Tokens> {
	const { login, password, client } = ctx.params;
	// Who tried is unknown here: the login string may be an e-mail or phone, which no audit record holds.
	const refused = (outcome: "failure" | "refused", reason: string) =>
		audit(ctx.broker, ctx, { actor: "anonymous", action: "auth.login", outcome, detail: { client, reason }, ...(clientIp ? { clientIp } : {}) });
	const pass = await gate.admit(login, clientIp).catch(async err => {
		await refused("refused", "throttled");
		throw err;
	});
	try {
		const found = await ctx.call<{ userId: string }, unknown>("sv-user.resolveLogin", { login }).catch((err: { type?: string }) => {
			if (err.type === "USER_NOT_FOUND") return undefined;
			throw err;
		});
		if (!found) {
			await ctx.call("sv-user.checkPassword", { login, password });
			await refused("failure", "unknown-login");
			throw new InvalidCredentialsError();
		}
		const tokens = await ctx.call<Tokens, unknown>("auth-jwt.authenticate", { userId: found.userId, password, client });
		const { newIp } = await pass.succeeded();
		if (newIp && clientIp) await noticeNewLogin(ctx, tokens, clientIp);
		return tokens;
	} catch (err) {
		await ((err as { type?: string }).type === "INVALID_CREDENTIALS" ? pass.failed() : pass.unchecked());
		throw err;
	}
}
