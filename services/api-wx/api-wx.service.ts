import type { ServiceSchema } from "moleculer";
import { gatewayMixin } from "../../mixins/gateway.mixin.ts";
import type { GatewayContext } from "../../mixins/gateway.mixin.ts";

const tokens = {
	type: "object",
	properties: { accessToken: { type: "string" }, refreshToken: { type: "string" }, tokenType: { const: "Bearer" }, expiresIn: { type: "integer" }, region: { type: "string" }, created: { type: "boolean" } }
};

/** The REST gateway for WeChat mini-program clients: the common routes plus login by wx.login() code. */
const apiWx: ServiceSchema = {
	name: "api-wx",
	mixins: [
		gatewayMixin({
			client: "wx",
			routes: [
				{
					method: "POST", path: "/api/v1/wx/login", name: "wxLogin", summary: "Log in with a wx.login() code (the first login registers the user)", tag: "auth", auth: false, status: 200, response: tokens,
					params: { $$strict: true, code: { type: "string", min: 1, max: 128, pattern: /^[A-Za-z0-9_-]+$/, messages: { stringPattern: "not a wx.login() code" } } },
					async handler(ctx: GatewayContext, params: { code: string }) {
						const t = await ctx.call<{ accessToken: string; refreshToken: string; tokenType: string; expiresIn: number; region: string; created: boolean }, unknown>("auth-jwt.wxLogin", { code: params.code });
						return { ...this.publicTokens(t), created: t.created };
					}
				}
			]
		})
	]
};

export default apiWx;
