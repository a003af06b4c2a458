import type { RedisOptions } from "ioredis";
import { Redis } from "ioredis";

/** Opens Redis and fails fast (instead of queueing commands forever) when it is not there. */
export async function openRedis(url: string, keyPrefix: string): Promise<Redis> {
	const client = new Redis(url, {
		keyPrefix,
		lazyConnect: true,
		connectTimeout: 5000,
		maxRetriesPerRequest: 2,
		enableOfflineQueue: false,
		retryStrategy: times => Math.min(times * 200, 2000)
	});
	try {
		await client.connect();
	} catch (err) {
		client.disconnect();
		throw new Error(`Redis at ${redactUrl(url)} is not reachable: ${(err as Error).message}`);
	}
	return client;
}

export function redactUrl(url: string): string {
	try {
		const u = new URL(url);
		if (u.password) u.password = "***";
		return u.toString();
	} catch {
		return url;
	}
}

/** ioredis options from a `redis://[user:pass@]host:port/db` URL (Moleculer's Redis cacher takes options). */
export function redisOptions(url: string): RedisOptions {
	const u = new URL(url);
	return {
		host: u.hostname,
		port: Number(u.port || 6379),
		db: Number(u.pathname.slice(1) || 0),
		...(u.username ? { username: decodeURIComponent(u.username) } : {}),
		...(u.password ? { password: decodeURIComponent(u.password) } : {}),
		...(u.protocol === "rediss:" ? { tls: {} } : {})
	};
}
