import type { ServiceSchema } from "moleculer";
import { gatewayMixin } from "../../mixins/gateway.mixin.ts";

/** The REST gateway for www clients: the common routes, www tokens only. */
const apiWww: ServiceSchema = {
	name: "api-www",
	mixins: [gatewayMixin({ client: "www" })]
};

export default apiWww;
