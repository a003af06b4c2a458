import { randomBytes } from "node:crypto";
import type { Redis } from "ioredis";

/** A limit: at most `max` failures inside any window of `windowMs`. */
export interface Limit {
	max: number;
	windowMs: number;
}

/** 10 failed logins per account per 15 minutes, 100 per client IP per hour. */
export const ACCOUNT_LIMIT: Limit = { max: 10, windowMs: 15 * 60_000 };
export const IP_LIMIT: Limit = { max: 100, windowMs: 60 * 60_000 };

/** An attempt admitted by the throttle: counted as a failure unless `succeeded` is called. */
export interface Attempt {
	succeeded(): Promise<void>;
}

export type Admission = { ok: true; attempt: Attempt } | { ok: false; retryAfterS: number };

/**
 * Failed-login counters as sliding windows. An attempt takes its slot before the password is
 * checked, so parallel guesses cannot all slip under the limit; a success gives the slot back.
 */
export interface LoginThrottle {
	admit(key: string, limit: Limit, now?: number): Promise<Admission>;
	/** Forgets every failure of `key` (an account after a successful login). */
	clear(key: string): Promise<void>;
}

// KEYS[1] = window set; ARGV = now, windowMs, max, member. Returns {1} or {0, retryAfterMs}.
const ADMIT = `
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", tonumber(ARGV[1]) - tonumber(ARGV[2]))
if redis.call("ZCARD", KEYS[1]) >= tonumber(ARGV[3]) then
	local oldest = redis.call("ZRANGE", KEYS[1], 0, 0, "WITHSCORES")
	return {0, tonumber(oldest[2]) + tonumber(ARGV[2]) - tonumber(ARGV[1])}
end
redis.call("ZADD", KEYS[1], ARGV[1], ARGV[4])
redis.call("PEXPIRE", KEYS[1], ARGV[2])
return {1}`;

/** Shared by every node of the region through Redis; one Lua call per admission, so it is atomic. */
export class RedisLoginThrottle implements LoginThrottle {
	private readonly redis: Redis;

	constructor(redis: Redis) {
		this.redis = redis;
	}

	async admit(key: string, limit: Limit, now = Date.now()): Promise<Admission> {
		const redisKey = `login-fail:${key}`;
		const member = `${now}:${randomBytes(6).toString("hex")}`;
		const [ok, retryMs] = (await this.redis.eval(ADMIT, 1, redisKey, now, limit.windowMs, limit.max, member)) as [number, number?];
		if (ok !== 1) return { ok: false, retryAfterS: Math.max(1, Math.ceil((retryMs ?? limit.windowMs) / 1000)) };
		return {
			ok: true,
			attempt: {
				succeeded: async () => {
					await this.redis.zrem(redisKey, member);
				}
			}
		};
	}

	async clear(key: string): Promise<void> {
		await this.redis.del(`login-fail:${key}`);
	}
}

/** One process only (embedded mode): the same windows in memory, pruned as they are read. */
export class MemoryLoginThrottle implements LoginThrottle {
	private readonly windows = new Map<string, number[]>();
	private readonly maxKeys: number;

	constructor(maxKeys = 100_000) {
		this.maxKeys = maxKeys;
	}

	async admit(key: string, limit: Limit, now = Date.now()): Promise<Admission> {
		const times = (this.windows.get(key) ?? []).filter(t => t > now - limit.windowMs);
		if (times.length >= limit.max) {
			this.windows.set(key, times);
			return { ok: false, retryAfterS: Math.max(1, Math.ceil((times[0]! + limit.windowMs - now) / 1000)) };
		}
		const stamp = now + Math.random() / 1000;
		times.push(stamp);
		this.windows.set(key, times);
		// Bounded: the oldest keys go first when an attacker sprays new ones.
		if (this.windows.size > this.maxKeys) this.windows.delete(this.windows.keys().next().value!);
		return {
			ok: true,
			attempt: {
				succeeded: async () => {
					const list = this.windows.get(key);
					const i = list?.indexOf(stamp) ?? -1;
					if (i >= 0) list!.splice(i, 1);
				}
			}
		};
	}

	async clear(key: string): Promise<void> {
		this.windows.delete(key);
	}
}
