import type { Redis } from "ioredis";

/** At most `max` requests per `windowMs` per key. */
export interface RateLimit {
	max: number;
	windowMs: number;
}

export type RateDecision = { ok: true } | { ok: false; retryAfterS: number };

/** The one "allowed" answer, shared: nothing to allocate on the usual path. */
const ALLOWED: RateDecision = Object.freeze({ ok: true });

/** A limiter that can answer at once (memory) answers without a promise. */
export interface RateLimiter {
	hit(key: string, limit: RateLimit, now?: number): RateDecision | Promise<RateDecision>;
}

// KEYS[1] = the window's counter; ARGV = chunk, windowMs. Returns the counter after taking the chunk.
const RESERVE = `
local n = redis.call("INCRBY", KEYS[1], ARGV[1])
if n == tonumber(ARGV[1]) then redis.call("PEXPIRE", KEYS[1], ARGV[2]) end
return n`;

/** What one node holds of a key's current window. */
interface Lease {
	window: number;
	/** Requests taken from Redis and not yet spent here. */
	left: number;
	/** Redis has handed out the whole window: refuse once `left` is spent. */
	closed: boolean;
	reserving?: Promise<void>;
}

/**
 * The entry of `key` for `window`, a fresh one when the key's last entry is of an older window.
 * The map stays bounded: past `maxKeys` keys, the longest-unrenewed goes.
 */
function windowEntry<E extends { window: number }>(entries: Map<string, E>, key: string, window: number, maxKeys: number, fresh: () => E): E {
	let entry = entries.get(key);
	if (!entry || entry.window !== window) {
		entries.delete(key);
		entry = fresh();
		entries.set(key, entry);
		if (entries.size > maxKeys) entries.delete(entries.keys().next().value!);
	}
	return entry;
}

function retryIn(window: number, limit: RateLimit, now: number): RateDecision {
	return { ok: false, retryAfterS: Math.max(1, Math.ceil(((window + 1) * limit.windowMs - now) / 1000)) };
}

/**
 * Fixed windows counted in Redis, shared by every gateway node of the region. A node takes a
 * window's requests from Redis a chunk at a time (1/20 of the limit, at least one) and spends them
 * in memory, so most requests cost no round trip. Redis never hands out more than the limit: the
 * limit holds exactly across nodes; a window's last requests may be refused on one node while
 * another still holds a few it has not spent.
 */
export class RedisRateLimiter implements RateLimiter {
	private readonly redis: Redis;
	private readonly leases = new Map<string, Lease>();
	private readonly shares: number;
	private readonly maxKeys: number;

	constructor(redis: Redis, opts: { shares?: number; maxKeys?: number } = {}) {
		this.redis = redis;
		this.shares = opts.shares ?? 20;
		this.maxKeys = opts.maxKeys ?? 100_000;
	}

	hit(key: string, limit: RateLimit, now = Date.now()): RateDecision | Promise<RateDecision> {
		const window = Math.floor(now / limit.windowMs);
		const lease = windowEntry<Lease>(this.leases, key, window, this.maxKeys, () => ({ window, left: 0, closed: false }));
		if (lease.left > 0) {
			lease.left--;
			return ALLOWED;
		}
		if (lease.closed) return retryIn(window, limit, now);
		lease.reserving ??= this.reserve(key, lease, limit).finally(() => (lease.reserving = undefined));
		// Requests waiting on one reservation share it, then take their turn.
		return lease.reserving.then(() => this.hit(key, limit, now));
	}

	private async reserve(key: string, lease: Lease, limit: RateLimit): Promise<void> {
		const chunk = Math.max(1, Math.floor(limit.max / this.shares));
		const taken = Number(await this.redis.eval(RESERVE, 1, `rate:${key}:${lease.window}`, chunk, limit.windowMs));
		const granted = Math.min(chunk, limit.max - (taken - chunk));
		if (granted > 0) lease.left += granted;
		if (taken >= limit.max) lease.closed = true;
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
		const entry = windowEntry(this.counts, key, window, this.maxKeys, () => ({ window, count: 0 }));
		entry.count++;
		return entry.count <= limit.max ? ALLOWED : retryIn(window, limit, now);
	}
}
