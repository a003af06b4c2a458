import { randomBytes } from "node:crypto";
import type { Redis } from "ioredis";

/**
 * Exponential back-off on failures: the first `free` failures within `memoryMs` cost nothing; after
 * that an attempt must wait `baseMs · 2^(failures − free)`, at most `capMs`, after the last
 * failure. A refused attempt is not a failure, so hammering does not push the wait further out.
 */
export interface BackOff {
	free: number;
	baseMs: number;
	capMs: number;
	memoryMs: number;
}

/**
 * One login string (a known one or not, counted alike): 5 free failures, then 1 s doubling up to
 * 15 min; a failure is forgotten after 24 h. Hammered at the cap that is about 100 guesses a day.
 */
export const LOGIN_BACKOFF: BackOff = { free: 5, baseMs: 1000, capMs: 15 * 60_000, memoryMs: 24 * 3600_000 };
/** One client IP, whatever logins it tries: 100 free failures an hour, then 1 min doubling up to 1 h. */
export const IP_BACKOFF: BackOff = { free: 100, baseMs: 60_000, capMs: 3600_000, memoryMs: 3600_000 };

/**
 * An attempt admitted by the throttle: counted as a failure from its admission (parallel guesses
 * see it), unless `succeeded` gives the slot back. `failed` dates it to when the password was found
 * wrong, so the wait runs from the answer the guesser got, not from a slow check's start.
 */
export interface Attempt {
	succeeded(): Promise<void>;
	failed(at?: number): Promise<void>;
}

export type Admission = { ok: true; attempt: Attempt } | { ok: false; retryAfterS: number };

/**
 * Failed-login counters. An attempt takes its slot before the password is checked, so parallel
 * guesses cannot all slip under the limit; a success (or an attempt that checked no password)
 * gives the slot back.
 */
export interface LoginThrottle {
	admit(key: string, policy: BackOff, now?: number): Promise<Admission>;
}

/** How long after the last of `failures` failures the next attempt must wait (0: none). */
export function backOffMs(failures: number, policy: BackOff): number {
	return failures < policy.free ? 0 : Math.min(policy.baseMs * 2 ** (failures - policy.free), policy.capMs);
}

const retryAfterS = (ms: number) => Math.max(1, Math.ceil(ms / 1000));

// KEYS[1] = failures (score = time); ARGV = now, memoryMs, free, baseMs, capMs, member.
// Returns {1} (admitted, slot taken) or {0, waitMs}. The same rule as backOffMs.
const ADMIT = `
local now = tonumber(ARGV[1])
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", now - tonumber(ARGV[2]))
local failures = redis.call("ZCARD", KEYS[1])
local free = tonumber(ARGV[3])
if failures >= free then
	local last = tonumber(redis.call("ZRANGE", KEYS[1], -1, -1, "WITHSCORES")[2])
	local wait = math.min(tonumber(ARGV[4]) * 2 ^ (failures - free), tonumber(ARGV[5]))
	if now < last + wait then return {0, math.ceil(last + wait - now)} end
end
redis.call("ZADD", KEYS[1], now, ARGV[6])
redis.call("PEXPIRE", KEYS[1], ARGV[2])
return {1}`;

/** Shared by every node of the region through Redis; one Lua call per admission, so it is atomic. */
export class RedisLoginThrottle implements LoginThrottle {
	private readonly redis: Redis;

	constructor(redis: Redis) {
		this.redis = redis;
	}

	async admit(key: string, policy: BackOff, now = Date.now()): Promise<Admission> {
		const redisKey = `login-fail:${key}`;
		const member = `${now}:${randomBytes(6).toString("hex")}`;
		const [ok, waitMs] = (await this.redis.eval(ADMIT, 1, redisKey, now, policy.memoryMs, policy.free, policy.baseMs, policy.capMs, member)) as [
			number,
			number?
		];
		if (ok !== 1) return { ok: false, retryAfterS: retryAfterS(waitMs ?? policy.capMs) };
		return {
			ok: true,
			attempt: {
				succeeded: async () => {
					await this.redis.zrem(redisKey, member);
				},
				failed: async (at = Date.now()) => {
					await this.redis.zadd(redisKey, "XX", at, member);
				}
			}
		};
	}
}

/** One process only (embedded mode): the same rule in memory, pruned as it is read. */
export class MemoryLoginThrottle implements LoginThrottle {
	private readonly failures = new Map<string, number[]>();
	private readonly maxKeys: number;

	constructor(maxKeys = 100_000) {
		this.maxKeys = maxKeys;
	}

	async admit(key: string, policy: BackOff, now = Date.now()): Promise<Admission> {
		const times = (this.failures.get(key) ?? []).filter(t => t > now - policy.memoryMs);
		this.failures.set(key, times);
		const wait = backOffMs(times.length, policy);
		const last = times.length ? Math.max(...times) : 0;
		if (wait > 0 && now < last + wait) return { ok: false, retryAfterS: retryAfterS(last + wait - now) };
		let stamp = now;
		times.push(stamp);
		// Bounded: the oldest keys go first when an attacker sprays new ones.
		if (this.failures.size > this.maxKeys) this.failures.delete(this.failures.keys().next().value!);
		return {
			ok: true,
			attempt: {
				// Equal times are interchangeable: any one of them is this slot.
				succeeded: async () => {
					const list = this.failures.get(key);
					const i = list?.indexOf(stamp) ?? -1;
					if (i >= 0) list!.splice(i, 1);
				},
				failed: async (at = Date.now()) => {
					const list = this.failures.get(key);
					const i = list?.indexOf(stamp) ?? -1;
					if (i >= 0) list![i] = stamp = at;
				}
			}
		};
	}
}
