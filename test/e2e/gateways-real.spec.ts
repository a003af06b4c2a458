import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gatewaySchemas, gatewayUrl, http } from "../harness/gateways.ts";
import type { KvNode } from "../harness/kv-node.ts";
import { startKvNode } from "../harness/kv-node.ts";
import { cleanupRealStores, deleteKvBucket, REAL, realStores, runId } from "../harness/real-servers.ts";
import { within } from "../harness/waiting.ts";

const run = runId();
const bucket = `t-${run}-directory`;
const stores = { "cn-east": realStores(run, "cn-east"), "eu-central": realStores(run, "eu-central") };
const nodes: Record<string, KvNode> = {};

beforeAll(async () => {
	const common = {
		natsUrl: REAL.nats,
		bucket,
		namespacePrefix: `t${run}-`,
		blindIndexKey: randomBytes(32),
		services: ["sv-region", "sv-user", "auth-jwt", "auth-rbac"],
		schemas: gatewaySchemas()
	};
	for (const region of ["cn-east", "eu-central"] as const) nodes[region] = await startKvNode({ ...common, region, stores: stores[region] });
	await within(async () => {
		const stats = await Promise.all(
			Object.values(nodes).map(n => n.node.broker.call<{ current: Record<string, boolean> }, unknown>("auth-jwt.stats", {}, { nodeID: n.node.broker.nodeID }))
		);
		return stats.every(s => s.current["cn-east"] && s.current["eu-central"]);
	}, 15_000);
});

afterAll(async () => {
	for (const n of Object.values(nodes)) await n.stop();
	for (const s of Object.values(stores)) await cleanupRealStores(s);
	await deleteKvBucket(bucket);
});

describe("gateways on real NATS, MariaDB and Redis, two regions", () => {
	it("registers at cn-east's api-www a user of eu-central, logs in through cn-east, and serves /me from eu-central", async () => {
		const cn = gatewayUrl(nodes["cn-east"]!.node.broker, "api-www");
		const registered = await http(cn, "POST", "/api/v1/auth/register", {
			body: { username: "ingrid", password: "midnight sun 66", email: "ingrid@example.no", country: "DE" }
		});
		expect(registered.status).toBe(201);
		expect(registered.body).toMatchObject({ username: "ingrid", region: "eu-central" });
		const login = await http(cn, "POST", "/api/v1/auth/login", { body: { login: "ingrid@example.no", password: "midnight sun 66" } });
		expect(login.status).toBe(200);
		expect(login.body.region).toBe("eu-central");
		const me = await http(cn, "GET", "/api/v1/me", { token: login.body.accessToken });
		expect(me.status).toBe(200);
		expect(me.body).toMatchObject({ id: registered.body.id, username: "ingrid", email: "ingrid@example.no", region: "eu-central" });
		const inCn = await nodes["cn-east"]!.node.stores.sql.db.selectFrom("users").select("id").execute();
		const inEu = await nodes["eu-central"]!.node.stores.sql.db.selectFrom("users").select("id").execute();
		expect(nodes["eu-central"]!.node.stores.sql.dialect).toBe("mysql");
		expect(inCn).toEqual([]);
		expect(inEu.map(r => r.id)).toEqual([registered.body.id]);
		// Logged out at the other region's gateway: refused at both.
		const eu = gatewayUrl(nodes["eu-central"]!.node.broker, "api-www");
		expect((await http(eu, "POST", "/api/v1/auth/logout", { token: login.body.accessToken })).status).toBe(204);
		await within(async () => (await http(cn, "GET", "/api/v1/me", { token: login.body.accessToken })).status === 401, 1000);
	});

	it("serves /me from cn-east's cache, and shows a change made through eu-central within a second", async () => {
		const cn = gatewayUrl(nodes["cn-east"]!.node.broker, "api-www");
		const eu = gatewayUrl(nodes["eu-central"]!.node.broker, "api-www");
		const gateway = nodes["cn-east"]!.node.broker.getLocalService("api-www") as unknown as { userReads: { hits: number } };
		await http(cn, "POST", "/api/v1/auth/register", { body: { username: "jorunn", password: "polar night 77", country: "DE" } });
		const token = (await http(cn, "POST", "/api/v1/auth/login", { body: { login: "jorunn", password: "polar night 77" } })).body.accessToken as string;
		expect((await http(cn, "GET", "/api/v1/me", { token })).body.phone).toBeNull();
		const hits = gateway.userReads.hits;
		expect((await http(cn, "GET", "/api/v1/me", { token })).status).toBe(200);
		expect(gateway.userReads.hits, "the second read came from the cache").toBe(hits + 1);
		expect((await http(eu, "PATCH", "/api/v1/me", { token, body: { phone: "+4915112345678" } })).status).toBe(200);
		const ms = await within(async () => (await http(cn, "GET", "/api/v1/me", { token })).body.phone === "+4915112345678", 1000);
		console.log(`cn-east's cached /me showed a change made through eu-central after ${ms} ms`);
	});
});
