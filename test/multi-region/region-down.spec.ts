import { randomBytes } from "node:crypto";
import type { Context, ServiceSchema } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { busWatchOf } from "../../regions/runtime/bus-watch.ts";
import type { EdgeTopology } from "../harness/edge-topology.ts";
import { startEdgeTopology } from "../harness/edge-topology.ts";
import type { KvNode } from "../harness/kv-node.ts";
import { startKvNode } from "../harness/kv-node.ts";
import { runId } from "../harness/real-servers.ts";

/** A per-user action; `slowMs` keeps a call in flight across the outage. */
const actor: ServiceSchema = {
	name: "actor",
	actions: {
		ping: {
			home: "userId",
			params: { userId: "string", slowMs: { type: "number", optional: true } },
			async handler(ctx: Context<{ userId: string; slowMs?: number }>) {
				if (ctx.params.slowMs) await new Promise(r => setTimeout(r, ctx.params.slowMs));
				return { region: this.broker.metadata.region };
			}
		}
	}
};

const REGIONS = ["cn-east", "ap-south", "eu-central"];
const COUNTRY: Record<string, string> = { "cn-east": "JP", "ap-south": "SG", "eu-central": "DE" };
let cluster: EdgeTopology;
const nodes: Record<string, KvNode> = {};
const users: Record<string, string> = {};

beforeAll(async () => {
	cluster = await startEdgeTopology(REGIONS);
	const run = runId();
	const common = {
		bucket: `dir-${run}`,
		hubReplicas: cluster.placement("cn-east").originReplicas,
		namespacePrefix: `t${run}-`,
		blindIndexKey: randomBytes(32),
		schemas: [actor]
	};
	for (const region of REGIONS) nodes[region] = await startKvNode({ ...common, region, natsUrl: cluster.urls[region]! });
	const caller = nodes["ap-south"]!.node;
	for (const region of REGIONS) {
		const res = await caller.broker.call<{ userId: string }, unknown>("sv-region.register", {
			identities: [{ kind: "username", value: `down-${region}-${run}` }],
			country: COUNTRY[region]
		});
		users[region] = res.userId;
	}
	// Every region answers for every user before the outage.
	const deadline = Date.now() + 15_000;
	for (const region of REGIONS)
		for (;;) {
			const ok = await caller.broker.call("actor.ping", { userId: users[region] }).then(
				() => true,
				() => false
			);
			if (ok) break;
			if (Date.now() > deadline) throw new Error(`user of ${region} never answered`);
			await new Promise(r => setTimeout(r, 100));
		}
}, 90_000);

afterAll(async () => {
	for (const n of Object.values(nodes)) await n.stop().catch(() => undefined);
	await cluster?.stop();
});

describe("a region's NATS goes down", () => {
	it("fails its users' calls within 2 s: a write in flight with OUTCOME_UNKNOWN (it may have run), new calls with REGION_UNAVAILABLE; other users see no errors", async () => {
		const caller = nodes["ap-south"]!.node;
		for (let i = 0; i < 50 && caller.health.status("eu-central") !== "up"; i++) await new Promise(r => setTimeout(r, 100));
		expect(caller.health.status("eu-central")).toBe("up");
		const inFlight = caller.broker.call("actor.ping", { userId: users["eu-central"], slowMs: 10_000 }).then(
			() => ({ ok: true, at: Date.now() }),
			(err: { type: string }) => ({ ok: false, type: err.type, at: Date.now() })
		);
		await new Promise(r => setTimeout(r, 200));
		const killedAt = Date.now();
		await cluster.kill("eu-central");

		const failed = await inFlight;
		expect(failed).toMatchObject({ ok: false, type: "OUTCOME_UNKNOWN" });
		expect(failed.at - killedAt).toBeLessThan(2000);

		// New calls for the eu-central user fail fast; the others keep working, with no error at all.
		const errors: string[] = [];
		for (let i = 0; i < 20; i++) {
			const started = Date.now();
			const res = await caller.broker.call("actor.ping", { userId: users["eu-central"] }).catch((err: { type: string; code: number; data: unknown }) => err);
			expect(res).toMatchObject({ type: "REGION_UNAVAILABLE", code: 503, data: { region: "eu-central" } });
			expect(Date.now() - started).toBeLessThan(2000);
			for (const region of ["cn-east", "ap-south"])
				await caller.broker.call("actor.ping", { userId: users[region] }).catch((err: Error) => errors.push(`${region}: ${err.message}`));
		}
		expect(errors).toEqual([]);
		expect(caller.health.status("eu-central")).toBe("down");
	});

	it("serves the region's users again once its NATS is back", async () => {
		await cluster.restart("eu-central");
		const caller = nodes["ap-south"]!.node;
		const deadline = Date.now() + 30_000;
		for (;;) {
			const res = await caller.broker.call<{ region: string }, unknown>("actor.ping", { userId: users["eu-central"] }).catch(() => undefined);
			if (res) {
				expect(res.region).toBe("eu-central");
				break;
			}
			if (Date.now() > deadline) throw new Error("eu-central never came back");
			await new Promise(r => setTimeout(r, 200));
		}
		expect(caller.health.status("eu-central")).toBe("up");
	}, 40_000);

	it("fails calls that need the bus at once when the caller's own NATS is gone, and still serves the users it holds itself", async () => {
		const caller = nodes["ap-south"]!.node;
		await cluster.kill("ap-south");
		// Moleculer's own flag stays up while its client reconnects; the node's bus watch sees the drop.
		const watch = busWatchOf(caller.broker)!;
		for (let i = 0; i < 50 && watch.connected; i++) await new Promise(r => setTimeout(r, 100));
		expect(watch.connected).toBe(false);
		const started = Date.now();
		const res = await caller.broker.call("actor.ping", { userId: users["eu-central"] }).catch((err: { type: string; data: { cause?: string } }) => err);
		expect(res).toMatchObject({ type: "REGION_UNAVAILABLE", data: { region: "eu-central", cause: "this node is not connected to its transporter" } });
		expect(Date.now() - started).toBeLessThan(500);
		await expect(caller.broker.call("actor.ping", { userId: users["ap-south"] })).resolves.toEqual({ region: "ap-south" });
		await cluster.restart("ap-south");
	}, 30_000);
});
