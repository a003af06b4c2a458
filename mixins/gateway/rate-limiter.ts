import type { Redis } from "ioredis";

/** At most `max` requests per `windowMs` per key. */
export interface RateLimit {
	max: number;
	windowMs: number;
}

export type RateDecision = { ok: true } | { ok: false; retryAfterS: number };

/** A limiter that can answer at once (memory) answers without a promise. */
export interface RateLimiter {
	hit(key: string, limit: RateLimit, now?: number): RateDecision | Promise<RateDecision>;
}

// KEYS[1] = counter; ARGV = windowMs. Returns {count, ttlMs}.
const HIT = `
local n = redis.call("INCR", KEYS[1])
if n == 1 then redis.call("PEXPIRE", KEYS[1], ARGV[1]) end
return {n, redis.call("PTTL", KEYS[1])}`;

/** Fixed windows in Redis, shared by every gateway node of the region: one round trip per request. */
export class RedisRateLimiter implements RateLimiter {
	private readonly redis: Redis;

	constructor(redis: Redis) {
		this.redis = redis;
	}

	async hit(key: string, limit: RateLimit, now = Date.now()): Promise<RateDecision> {
		const window = Math.floor(now / limit.windowMs);
		const [count, ttl] = (await this.redis.eval(HIT, 1, `rate:${key}:${window}`, limit.windowMs)) as [number, number];
		return count <= limit.max ? { ok: true } : { ok: false, retryAfterS: Math.max(1, Math.ceil((ttl > 0 ? ttl : limit.windowMs) / 1000)) };
	}
}

/** The same windows in memory, for one process (embedded mode); bounded, oldest windows dropped first. */
export class MemoryRateLimiter implements RateLimiter {
	private readonly counts = new Map<string, { window: number; count: number }>();
	private readonly maxKeys: number;

	constructor(maxKeys = 100_000) {
		this.maxKeys = maxKeys;
	}

	hit(key: string, limit: RateLimit, now = Date.now()): RateDecision {
		const window = Math.floor(now / limit.windowMs);
		let entry = this.counts.get(key);
		if (!entry || entry.window !== window) {
			this.counts.delete(key);
			entry = { window, count: 0 };
			this.counts.set(key, entry);
			if (this.counts.size > this.maxKeys) this.counts.delete(this.counts.keys().next().value!);
		}
		entry.count++;
		return entry.count <= limit.max ? { ok: true } : { ok: false, retryAfterS: Math.max(1, Math.ceil(((window + 1) * limit.windowMs - now) / 1000)) };
	}
}
