import type { ServiceSchema } from "moleculer";
import { Errors } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../../app/node.ts";
import { startRegionNode } from "../../../app/node.ts";
import { findRegion, loadRegions } from "../../../regions/loader.ts";
import { gatewaySchemas, gatewayUrl, http } from "../../harness/gateways.ts";

/** Stands in for sv-user: every registration fails with an error Moleculer may retry. */
let registrations = 0;
const flakyUsers: ServiceSchema = {
	name: "sv-user",
	actions: {
		register: {
			handler() {
				registrations++;
				throw new Errors.MoleculerRetryableError("storage is restarting", 503, "STORAGE_RESTARTING");
			}
		}
	}
};

let node: RegionNode;

beforeAll(async () => {
	const regions = loadRegions();
	node = await startRegionNode({
		region: findRegion(regions, "cn-east"),
		regions,
		transport: "embedded",
		services: ["sv-region"],
		schemas: [...gatewaySchemas().filter(s => s.name === "api-www"), flakyUsers],
		stores: { sql: "sqlite::memory:", keyPrefix: "gateway-mixin:" },
		env: { EDGEHOME_NAMESPACE_PREFIX: "gateway-mixin-", EDGEHOME_METRICS_PORT: "off", EDGEHOME_RETRIES: "2" },
		overrides: { logger: false }
	});
});

afterAll(() => node?.stop());

describe("gateway mixin", () => {
	it("runs a request once: only the service call is retried, never the whole request", async () => {
		const res = await http(gatewayUrl(node.broker, "api-www"), "POST", "/api/v1/auth/register", {
			body: { username: "retried", password: "a long enough password" }
		});
		expect(res.status).toBeGreaterThanOrEqual(500);
		// One attempt and the broker's two retries of the call; a retried request would make nine.
		expect(registrations).toBe(3);
	});

	it("serves routes on the gateway's node only: nothing on the service bus can call one with a user of its choosing", async () => {
		for (const action of ["api-www.me", "api-www.rest", "api-www.updateMe"])
			await expect(node.broker.call(action, {}, { meta: { user: { id: "0".repeat(26), sid: "s", region: "cn-east", client: "www" } } })).rejects.toMatchObject({
				type: "SERVICE_NOT_FOUND",
				data: { action }
			});
	});
});
