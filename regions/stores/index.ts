import type { Redis } from "ioredis";
import { openRedis } from "./redis.ts";
import type { SqlStore } from "./sql.ts";
import { openSqlStore } from "./sql.ts";

export type { Migrations } from "./migrate.ts";
export { MigrationError, migrate } from "./migrate.ts";
export type { SqlStore } from "./sql.ts";

export interface StoreSettings {
	/** `mysql://…`, `sqlite:<file>` or `sqlite::memory:` */
	sql: string;
	/** Redis for sessions and rate limits; absent when embedded (memory). */
	redis?: string;
	/** Prefix of every Redis key this region writes, so regions and test runs never collide. */
	keyPrefix: string;
}

/** Everything a region's services persist to, opened once per process and region. */
export interface RegionStores {
	readonly sql: SqlStore;
	readonly redis: Redis | undefined;
	readonly keyPrefix: string;
	/** Resolves when every store answers; rejects naming the one that does not. */
	ping(timeoutMs?: number): Promise<void>;
	close(): Promise<void>;
}

export async function openRegionStores(settings: StoreSettings): Promise<RegionStores> {
	const sql = await openSqlStore(settings.sql);
	let redis: Redis | undefined;
	try {
		redis = settings.redis ? await openRedis(settings.redis, settings.keyPrefix) : undefined;
	} catch (err) {
		await sql.close();
		throw err;
	}
	return {
		sql,
		redis,
		keyPrefix: settings.keyPrefix,
		async ping(timeoutMs = 1000) {
			await withTimeout(
				Promise.all([
					sql.ping().catch(err => Promise.reject(new Error(`sql: ${err.message}`))),
					redis?.ping().catch(err => Promise.reject(new Error(`redis: ${err.message}`)))
				]),
				timeoutMs,
				"stores did not answer"
			);
		},
		async close() {
			await Promise.allSettled([sql.close(), redis?.quit()]);
		}
	};
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
	let timer: NodeJS.Timeout | undefined;
	const timeout = new Promise<never>((_, reject) => {
		timer = setTimeout(() => reject(new Error(`${message} within ${ms} ms`)), ms);
	});
	return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
