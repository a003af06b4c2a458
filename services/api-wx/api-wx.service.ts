import type { ServiceSchema } from "moleculer";
import { gatewayMixin } from "../../mixins/gateway.mixin.ts";
import { publicTokens } from "../../mixins/gateway/common-routes.ts";
import { CALL_FAILURES, THROTTLED, WX_LOGIN_FAILURES } from "../../mixins/gateway/declared-errors.ts";
import { wxTokens } from "../../mixins/gateway/response-schemas.ts";

/** The REST gateway for WeChat mini-program clients: the common routes plus login by wx.login() code. */
const apiWx: ServiceSchema = {
	name: "api-wx",
	mixins: [
		gatewayMixin({
			client: "wx",
			routes: [
				{
					method: "POST", path: "/api/v1/wx/login", name: "wxLogin", summary: "Log in with a wx.login() code (the first login registers the user)", tag: "auth", auth: false, status: 200,
					response: wxTokens, errors: [...CALL_FAILURES, ...WX_LOGIN_FAILURES, THROTTLED],
					params: { $$strict: true, code: { type: "string", min: 1, max: 128, pattern: /^[A-Za-z0-9_-]+$/, messages: { stringPattern: "not a wx.login() code" } } },
					async handler(ctx, params: { code: string }) {
						const t = await ctx.call<Parameters<typeof publicTokens>[0] & { created: boolean }, unknown>("auth-jwt.wxLogin", { code: params.code });
						return { ...publicTokens(t), created: t.created };
					}
				}
			]
		})
	]
};

export default apiWx;
