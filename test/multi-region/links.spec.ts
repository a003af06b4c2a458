import type { Context } from "moleculer";
import { Errors } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../app/node.ts";
import { startRegionNode } from "../../app/node.ts";
import { findRegion, loadRegions } from "../../regions/loader.ts";
import type { RegionDefinition } from "../../regions/region.ts";
import type { AnyServiceSchema } from "../../services/index.ts";
import type { EdgeTopology } from "../harness/edge-topology.ts";
import { startEdgeTopology } from "../harness/edge-topology.ts";

const regions = loadRegions();
const A = findRegion(regions, "cn-east");
const B = findRegion(regions, "eu-central");
const C = findRegion(regions, "ap-south");

/** Says which broker answered, so a test can tell which region a call reached. */
const echoSchema: AnyServiceSchema = {
	name: "echo",
	actions: {
		where(ctx: Context<unknown>) {
			return { namespace: ctx.broker.namespace, nodeID: ctx.broker.nodeID, params: ctx.params };
		}
	}
};

function startNode(region: RegionDefinition, natsUrl: string, schemas: AnyServiceSchema[]): Promise<RegionNode> {
	return startRegionNode({
		region,
		transport: "nats",
		env: { EDGEHOME_NATS_URL: natsUrl, EDGEHOME_METRICS_PORT: "off", EDGEHOME_CACHER: "off" },
		services: [],
		schemas,
		stores: { sql: "sqlite::memory:", keyPrefix: "t:" },
		overrides: { logger: false }
	});
}

describe("region links on a two-region NATS supercluster", () => {
	let cluster: EdgeTopology;
	let nodeA: RegionNode;
	let nodeB: RegionNode;

	beforeAll(async () => {
		cluster = await startEdgeTopology([A.id, B.id]);
		nodeB = await startNode(B, cluster.urls[B.id]!, [echoSchema]);
		nodeA = await startNode(A, cluster.urls[A.id]!, []);
	});

	afterAll(async () => {
		try {
			await Promise.all([nodeA?.stop(), nodeB?.stop()]);
		} finally {
			await cluster?.stop();
		}
	});

	it("calls a service of another region through a link, across the gateway", async () => {
		const link = await nodeA.links.broker(B.id);
		// A's link is a client of A's server only and B's node of B's server only: the call must cross the gateway.
		expect(link.options.transporter).toMatchObject({ type: "NATS", options: { url: cluster.urls[A.id] } });

		const answer = await nodeA.links.call(B.id, "echo.where", { x: 1 });

		expect(answer).toEqual({ namespace: B.id, nodeID: nodeB.broker.nodeID, params: { x: 1 } });
	});

	it("keeps regions apart: a node does not see the services of another region's namespace", async () => {
		// Once the link has reached B, B's node is known to have been announced through the gateway.
		await nodeA.links.call(B.id, "echo.where");

		await expect(nodeA.broker.call("echo.where", {}, { retries: 0 })).rejects.toBeInstanceOf(Errors.ServiceNotFoundError);
		expect(nodeA.broker.registry.getNodeList({ onlyAvailable: true, withServices: false }).map(n => n.id)).toEqual([nodeA.broker.nodeID]);
	});

	it.each([
		{ what: "a region with no node", region: C.id, action: "echo.where" },
		{ what: "a service the region does not run", region: B.id, action: "missing.where" }
	])("rejects a call to $what within the discovery timeout", async ({ region, action }) => {
		const started = Date.now();

		await expect(nodeA.links.call(region, action)).rejects.toMatchObject({ type: "WAITFOR_SERVICES" });

		// The 2 s discovery timeout is checked on Moleculer's 1 s dependency poll, so it ends by the poll after it.
		expect(Date.now() - started).toBeLessThan(4000);
	});
});
