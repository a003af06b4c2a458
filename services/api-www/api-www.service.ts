import type { ServiceSchema } from "moleculer";
import { gatewayMixin } from "../../mixins/gateway.mixin.ts";
import { FILE_ROUTES } from "../file-routes.ts";
import { COMMON_ROUTE_ERRORS } from "../gateway-errors.ts";
import { NOTICE_PUSHES, NOTICE_ROUTES } from "../notice-routes.ts";
import { ACTIVITY_ROUTES } from "../sv-log/routes.ts";
import { WALLET_ROUTES } from "../wallet-routes.ts";

/** The REST gateway for www clients: the common routes, the caller's wallet and notices, www tokens only. */
const apiWww: ServiceSchema = {
	name: "api-www",
	mixins: [
		gatewayMixin({ client: "www", commonErrors: COMMON_ROUTE_ERRORS, routes: [...WALLET_ROUTES, ...NOTICE_ROUTES, ...FILE_ROUTES, ...ACTIVITY_ROUTES] }),
		NOTICE_PUSHES
	]
};

export default apiWww;
