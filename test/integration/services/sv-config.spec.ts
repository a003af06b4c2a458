import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../../app/node.ts";
import { startRegionNode } from "../../../app/node.ts";
import { loadRegions } from "../../../regions/loader.ts";
import svConfig from "../../../services/sv-config/sv-config.service.ts";
import type { StartedServices } from "../../harness/embedded.ts";
import { startServices } from "../../harness/embedded.ts";
import { cleanupRealStores, REAL, realStores, runId } from "../../harness/real-servers.ts";

type Call = (action: string, params: unknown) => Promise<unknown>;

/** A user's session with sv-config; what each step answered, minus timestamps. */
async function scenario(call: Call): Promise<unknown[]> {
	const outcome = (p: Promise<unknown>) =>
		p.then(
			r => JSON.parse(JSON.stringify(r, (k, v) => (k === "updatedAt" ? undefined : v))),
			(e: { code: number; type: string }) => ({ error: e.type, code: e.code })
		);
	const steps: Promise<unknown>[] = [];
	const run = async (action: string, params: unknown) => steps.push(Promise.resolve(await outcome(call(action, params))));
	await run("set", { key: "limits.upload", scope: "global", value: 10 });
	await run("get", { key: "limits.upload" });
	await run("set", { key: "limits.upload", value: { mb: 25 } });
	await run("get", { key: "limits.upload" });
	await run("rollback", { key: "limits.upload", scope: "region", version: 1 });
	await run("history", { key: "limits.upload" });
	await run("list", { prefix: "limits", pageSize: 10 });
	await run("get", { key: "missing" });
	await run("set", { key: "Bad Key", value: 1 });
	await run("set", { key: "x", value: 1, extra: true });
	return Promise.all(steps);
}

const run = runId();
const env = {
	...process.env,
	EDGEHOME_NAMESPACE_PREFIX: `t${run}-`,
	EDGEHOME_KEY_PREFIX: `edgehome-test:${run}`,
	EDGEHOME_NATS_URL: REAL.nats,
	EDGEHOME_REDIS_URL: REAL.redis,
	EDGEHOME_METRICS_PORT: "off"
};
const region = loadRegions().find(r => r.id === "cn-east")!;
const stores = realStores(run, region.id);
let serviceNode: RegionNode;
let callerNode: RegionNode;
let embedded: StartedServices;

beforeAll(async () => {
	serviceNode = await startRegionNode({ region, transport: "nats", services: ["sv-config"], group: "config", stores, env, overrides: { logger: false } });
	callerNode = await startRegionNode({
		region,
		transport: "nats",
		services: [],
		group: "caller",
		stores: { sql: "sqlite::memory:", keyPrefix: "unused:" },
		env,
		overrides: { logger: false }
	});
	await callerNode.broker.waitForServices("sv-config", 10_000);
	embedded = await startServices([svConfig], { broker: { cacher: "Memory" } });
});

afterAll(async () => {
	await callerNode?.stop();
	await serviceNode?.stop();
	await embedded?.stop();
	await cleanupRealStores(stores);
});

describe("sv-config on real NATS + MariaDB + Redis", () => {
	it("answers the same calls exactly as it does embedded", async () => {
		const remote = await scenario((a, p) => callerNode.broker.call(`sv-config.${a}`, p));
		const local = await scenario((a, p) => embedded.broker.call(`sv-config.${a}`, p));
		expect(remote).toEqual(local);
		expect(remote[1]).toMatchObject({ scope: "global", value: 10 });
		expect(remote.at(-1)).toEqual({ error: "VALIDATION_ERROR", code: 422 });
	});

	it("ran on the other node, kept its rows in the run's own MariaDB database and cached in Redis", async () => {
		expect(serviceNode.stores.sql.dialect).toBe("mysql");
		expect(callerNode.broker.registry.getActionEndpoints("sv-config.get")!.hasLocal()).toBe(false);
		const rows = await serviceNode.stores.sql.db.selectFrom("config_entries").selectAll().where("key", "=", "limits.upload").execute();
		expect(rows).toHaveLength(3);
		await callerNode.broker.call("sv-config.get", { key: "limits.upload" });
		const redis = new Redis(REAL.redis);
		try {
			const keys = await redis.keys(`edgehome-test:${run}:cn-east:cache*`);
			expect(keys.length).toBeGreaterThan(0);
		} finally {
			redis.disconnect();
		}
	});

	it("is invisible from another namespace on the same NATS server", async () => {
		const stranger = await startRegionNode({
			region,
			transport: "nats",
			services: [],
			group: "stranger",
			stores: { sql: "sqlite::memory:", keyPrefix: "unused:" },
			env: { ...env, EDGEHOME_NAMESPACE_PREFIX: `t${run}-other-` },
			overrides: { logger: false }
		});
		try {
			await expect(stranger.broker.call("sv-config.get", { key: "limits.upload" })).rejects.toMatchObject({ type: "SERVICE_NOT_FOUND" });
		} finally {
			await stranger.stop();
		}
	});
});
