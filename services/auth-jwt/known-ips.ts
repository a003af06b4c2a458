import type { Redis } from "ioredis";

/**
 * The client IPs each login string has logged in from successfully, so its owner still gets in
 * from there while guessers elsewhere have backed the string off. Kept by the entry region beside
 * the throttle, under keyed hashes only. Limits: 20 IPs per login, each forgotten 90 days after
 * its last successful login.
 */
export const KNOWN_IPS_PER_LOGIN = 20;
export const KNOWN_IP_TTL_MS = 90 * 24 * 3600_000;

export interface KnownIps {
	remember(login: string, ip: string, now?: number): Promise<void>;
	has(login: string, ip: string, now?: number): Promise<boolean>;
}

/** Shared by every node of the region. */
export class RedisKnownIps implements KnownIps {
	private readonly redis: Redis;

	constructor(redis: Redis) {
		this.redis = redis;
	}

	async remember(login: string, ip: string, now = Date.now()): Promise<void> {
		const key = `login-known:${login}`;
		await this.redis
			.multi()
			.zadd(key, now, ip)
			.zremrangebyscore(key, "-inf", now - KNOWN_IP_TTL_MS)
			.zremrangebyrank(key, 0, -(KNOWN_IPS_PER_LOGIN + 1))
			.pexpire(key, KNOWN_IP_TTL_MS)
			.exec();
	}

	async has(login: string, ip: string, now = Date.now()): Promise<boolean> {
		const seen = await this.redis.zscore(`login-known:${login}`, ip);
		return seen !== null && Number(seen) > now - KNOWN_IP_TTL_MS;
	}
}

/** One process only (embedded mode); at most `maxLogins` logins, the least recently used go first. */
export class MemoryKnownIps implements KnownIps {
	private readonly byLogin = new Map<string, Map<string, number>>();
	private readonly maxLogins: number;

	constructor(maxLogins = 100_000) {
		this.maxLogins = maxLogins;
	}

	async remember(login: string, ip: string, now = Date.now()): Promise<void> {
		const ips = this.byLogin.get(login) ?? new Map<string, number>();
		this.byLogin.delete(login);
		this.byLogin.set(login, ips);
		ips.delete(ip);
		ips.set(ip, now);
		for (const [old, seen] of ips) if (ips.size > KNOWN_IPS_PER_LOGIN || seen <= now - KNOWN_IP_TTL_MS) ips.delete(old);
		if (this.byLogin.size > this.maxLogins) this.byLogin.delete(this.byLogin.keys().next().value!);
	}

	async has(login: string, ip: string, now = Date.now()): Promise<boolean> {
		const seen = this.byLogin.get(login)?.get(ip);
		return seen !== undefined && seen > now - KNOWN_IP_TTL_MS;
	}
}
