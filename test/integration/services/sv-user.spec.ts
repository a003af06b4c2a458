import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KvNode } from "../../harness/kv-node.ts";
import { startKvNode } from "../../harness/kv-node.ts";
import { cleanupRealStores, deleteKvBucket, REAL, realStores, runId } from "../../harness/real-servers.ts";

const run = runId();
const bucket = `t-${run}-directory`;
const stores = { "cn-east": realStores(run, "cn-east"), "eu-central": realStores(run, "eu-central") };
const nodes: Record<string, KvNode> = {};

beforeAll(async () => {
	const common = { natsUrl: REAL.nats, bucket, namespacePrefix: `t${run}-`, blindIndexKey: randomBytes(32), services: ["sv-region", "sv-user"] };
	for (const region of ["cn-east", "eu-central"] as const) nodes[region] = await startKvNode({ ...common, region, stores: stores[region] });
	await nodes["cn-east"]!.node.broker.waitForServices(["sv-user"], 10_000);
});

afterAll(async () => {
	for (const n of Object.values(nodes)) await n.stop();
	for (const s of Object.values(stores)) await cleanupRealStores(s);
	await deleteKvBucket(bucket);
});

describe("sv-user on real NATS + MariaDB, two regions", () => {
	it("registers at cn-east a user of eu-central: the row is only in eu-central's database, encrypted", async () => {
		const cn = nodes["cn-east"]!.node;
		const res = await cn.broker.call<{ id: string; region: string }, unknown>("sv-user.register", {
			username: "greta",
			password: "a real pass 1",
			email: "greta@example.se",
			country: "SE"
		});
		expect(res.region).toBe("eu-central");
		const inCn = await cn.stores.sql.db.selectFrom("users").selectAll().execute();
		const inEu = await nodes["eu-central"]!.node.stores.sql.db.selectFrom("users").selectAll().execute();
		expect(cn.stores.sql.dialect).toBe("mysql");
		expect(inCn).toHaveLength(0);
		expect(inEu.map(r => r.id)).toEqual([res.id]);
		expect(JSON.stringify(inEu)).not.toContain("greta@example.se");
	});

	it("checks the password through the other region and reads the profile from the home", async () => {
		const cn = nodes["cn-east"]!.node;
		const { userId } = await cn.broker.call<{ userId: string }, unknown>("sv-user.checkPassword", { login: "greta@example.se", password: "a real pass 1" });
		expect(await cn.broker.call("sv-user.get", { userId })).toMatchObject({ username: "greta", email: "greta@example.se", country: "SE" });
		await expect(cn.broker.call("sv-user.checkPassword", { login: "greta", password: "wrong pass 1" })).rejects.toMatchObject({
			type: "INVALID_CREDENTIALS",
			code: 401
		});
	});
});
