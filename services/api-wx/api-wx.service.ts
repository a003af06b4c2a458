import type { ServiceSchema } from "moleculer";
import { publicTokens } from "../../mixins/gateway/common-routes.ts";
import { declared } from "../../mixins/gateway/declared-errors.ts";
import { wxTokens } from "../../mixins/gateway/response-schemas.ts";
import { gatewayMixin } from "../../mixins/gateway.mixin.ts";
import { RateLimitedError, UpstreamTimeoutError, WxCodeInvalidError, WxNotConfiguredError } from "../auth-jwt/errors.ts";
import { FILE_ROUTES } from "../file-routes.ts";
import { COMMON_ROUTE_ERRORS, SERVICE_CALL_FAILURES } from "../gateway-errors.ts";
import { NOTICE_PUSHES, NOTICE_ROUTES } from "../notice-routes.ts";
import { ACTIVITY_ROUTES } from "../sv-log/routes.ts";
import { WALLET_ROUTES } from "../wallet-routes.ts";

/** What auth-jwt.wxLogin may answer besides any call's failures (WeChat's own frequency limit among them). */
const WX_LOGIN_FAILURES = [
	declared(new WxCodeInvalidError(0)),
	declared(new WxNotConfiguredError()),
	declared(new UpstreamTimeoutError(0)),
	declared(new RateLimitedError("-", 1))
];

/** The REST gateway for WeChat mini-program clients: the common routes, the caller's wallet and notices, and login by wx.login() code. */
const apiWx: ServiceSchema = {
	name: "api-wx",
	mixins: [
		gatewayMixin({
			client: "wx",
			commonErrors: COMMON_ROUTE_ERRORS,
			routes: [
				{
					method: "POST",
					path: "/api/v1/wx/login",
					name: "wxLogin",
					summary: "Log in with a wx.login() code (the first login registers the user)",
					tag: "auth",
					auth: false,
					status: 200,
					response: wxTokens,
					errors: [...SERVICE_CALL_FAILURES, ...WX_LOGIN_FAILURES],
					params: {
						$$strict: true,
						code: { type: "string", min: 1, max: 128, pattern: /^[A-Za-z0-9_-]+$/, messages: { stringPattern: "not a wx.login() code" } }
					},
					async handler(ctx, params: { code: string }) {
						const t = await ctx.call<Record<string, unknown>, unknown>("auth-jwt.wxLogin", { code: params.code });
						return { ...publicTokens(t), created: t.created };
					}
				},
				...WALLET_ROUTES,
				...NOTICE_ROUTES,
				...FILE_ROUTES,
				...ACTIVITY_ROUTES
			]
		}),
		NOTICE_PUSHES
	]
};

export default apiWx;
