import type { ServiceSchema } from "moleculer";
import { gatewayMixin } from "../../mixins/gateway.mixin.ts";
import { COMMON_ROUTE_ERRORS } from "../gateway-errors.ts";
import { WALLET_ROUTES } from "../wallet-routes.ts";

/** The REST gateway for app clients: the common routes and the caller's wallet, app tokens only. */
const apiApp: ServiceSchema = {
	name: "api-app",
	mixins: [gatewayMixin({ client: "app", commonErrors: COMMON_ROUTE_ERRORS, routes: [...WALLET_ROUTES] })]
};

export default apiApp;
