import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { MemoryRateLimiter, RedisRateLimiter } from "../../../mixins/gateway/rate-limiter.ts";
import { REAL, runId } from "../../harness/real-servers.ts";

const prefix = `edgehome-test:${runId()}:`;
const clients = [new Redis(REAL.redis, { keyPrefix: prefix }), new Redis(REAL.redis, { keyPrefix: prefix })];

afterAll(async () => {
	const keys = await clients[0]!.keys(`${prefix}*`);
	// KEYS answers full names; the client would prefix them again.
	const cleaner = new Redis(REAL.redis);
	if (keys.length) await cleaner.del(...keys);
	cleaner.disconnect();
	for (const c of clients) c.disconnect();
});

describe("gateway rate limiter", () => {
	it("shares one window between gateway nodes through Redis, and tells when to retry", async () => {
		const [a, b] = clients.map(c => new RedisRateLimiter(c)) as [RedisRateLimiter, RedisRateLimiter];
		const limit = { max: 10, windowMs: 60_000 };
		const now = 1_800_000_000_000;
		for (let i = 0; i < 10; i++) expect(await (i % 2 ? a : b).hit("ip:203.0.113.5", limit, now)).toEqual({ ok: true });
		const refused = await a.hit("ip:203.0.113.5", limit, now);
		expect(refused.ok).toBe(false);
		expect((refused as { retryAfterS: number }).retryAfterS).toBeGreaterThan(0);
		expect(await b.hit("ip:203.0.113.6", limit, now)).toEqual({ ok: true });
		// The next window starts afresh.
		expect(await a.hit("ip:203.0.113.5", limit, now + 60_000)).toEqual({ ok: true });
	});

	it("holds a limit exactly across nodes while most requests are answered from memory", async () => {
		const [a, b] = clients.map(c => new RedisRateLimiter(c)) as [RedisRateLimiter, RedisRateLimiter];
		const limit = { max: 200, windowMs: 60_000 };
		const now = 1_800_000_000_000;
		let admitted = 0;
		let roundTrips = 0;
		// Both nodes keep taking requests, concurrently, until each has been refused twice in a row.
		const node = async (limiter: RedisRateLimiter) => {
			for (let refusals = 0; refusals < 2; ) {
				const answer = limiter.hit("user:many-gateways", limit, now);
				if (answer instanceof Promise) roundTrips++;
				const decision = await answer;
				if (decision.ok) {
					admitted++;
					refusals = 0;
				} else refusals++;
			}
		};
		await Promise.all([node(a), node(b)]);
		expect(admitted).toBe(200);
		// A chunk is 1/20 of the limit: about 20 reservations, a few more for the refusals.
		expect(roundTrips).toBeLessThanOrEqual(30);
	});

	it("behaves the same in memory", async () => {
		const m = new MemoryRateLimiter();
		const limit = { max: 3, windowMs: 1000 };
		const results = [];
		for (let i = 0; i < 4; i++) results.push((await m.hit("k", limit, 5000)).ok);
		expect(results).toEqual([true, true, true, false]);
		expect(await m.hit("k", limit, 6000)).toEqual({ ok: true });
	});
});
