import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { connect } from "nats";
import type { StoreSettings } from "../../regions/stores/index.ts";
import { dropMysqlDatabase } from "../../regions/stores/sql.ts";

/** The real servers the integration tests use; CI makes sure they are up. */
export const REAL = {
	nats: process.env.EDGEHOME_TEST_NATS_URL ?? "nats://127.0.0.1:4222",
	mysql: process.env.EDGEHOME_TEST_MYSQL_URL ?? "mysql://root@127.0.0.1:3306",
	redis: process.env.EDGEHOME_TEST_REDIS_URL ?? "redis://127.0.0.1:6379/0"
};

/** Unique per test file run, so parallel and repeated runs never share a database, key or namespace. */
export function runId(): string {
	return `${Date.now().toString(36)}${randomBytes(3).toString("hex")}`;
}

/** Real MySQL + Redis settings for one region of one run: its own database and key prefix. */
export function realStores(run: string, region: string): StoreSettings {
	return {
		sql: `${REAL.mysql}/edgehome_t_${run}_${region.replace(/-/g, "_")}`,
		redis: REAL.redis,
		keyPrefix: `edgehome-test:${run}:${region}:`
	};
}

/** Drops the run's database and deletes every Redis key under its prefix. */
export async function cleanupRealStores(settings: StoreSettings): Promise<void> {
	await dropMysqlDatabase(settings.sql);
	if (!settings.redis) return;
	const redis = new Redis(settings.redis);
	try {
		let cursor = "0";
		do {
			const [next, keys] = await redis.scan(cursor, "MATCH", `${settings.keyPrefix}*`, "COUNT", 500);
			if (keys.length) await redis.del(...keys);
			cursor = next;
		} while (cursor !== "0");
	} finally {
		redis.disconnect();
	}
}

/** Deletes a run's directory bucket (its JetStream stream) from the real NATS server. */
export async function deleteKvBucket(bucket: string, servers = REAL.nats): Promise<void> {
	const nc = await connect({ servers });
	try {
		await (await nc.jetstreamManager()).streams.delete(`KV_${bucket}`).catch(() => undefined);
	} finally {
		await nc.close();
	}
}

/** The environment of a launcher process on the real NATS, in the run's own namespace, with no ops port or cache. */
export function launcherEnv(run: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
	return {
		...process.env,
		EDGEHOME_NAMESPACE_PREFIX: `t${run}-`,
		EDGEHOME_NATS_URL: REAL.nats,
		EDGEHOME_METRICS_PORT: "off",
		EDGEHOME_CACHER: "off",
		...extra
	};
}
