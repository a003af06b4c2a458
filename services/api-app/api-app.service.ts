import type { ServiceSchema } from "moleculer";
import { gatewayMixin } from "../../mixins/gateway.mixin.ts";

/** The REST gateway for app clients: the common routes, app tokens only. */
const apiApp: ServiceSchema = {
	name: "api-app",
	mixins: [gatewayMixin({ client: "app" })]
};

export default apiApp;
