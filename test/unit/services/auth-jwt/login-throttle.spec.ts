import { describe, expect, it } from "vitest";
import { KNOWN_IP_TTL_MS, KNOWN_IPS_PER_LOGIN, MemoryKnownIps } from "../../../../services/auth-jwt/known-ips.ts";
import { backOffMs, LOGIN_BACKOFF, MemoryLoginThrottle } from "../../../../services/auth-jwt/login-throttle.ts";
import { BACKED_OFF_WAITS, hammer } from "../../../harness/login-backoff.ts";

describe("login back-off", () => {
	it("gives five free failures, then doubles the wait from 1 s up to 15 min", async () => {
		expect(await hammer(new MemoryLoginThrottle(), "login:x", 1_000_000, 17)).toEqual(BACKED_OFF_WAITS);
		expect([0, 4, 5, 14, 15, 100].map(n => backOffMs(n, LOGIN_BACKOFF))).toEqual([0, 0, 1000, 512_000, 900_000, 900_000]);
	});

	it("runs the wait from when the last failure was found wrong, not from its admission", async () => {
		const throttle = new MemoryLoginThrottle();
		for (let i = 0; i < 5; i++) {
			const a = await throttle.admit("k", LOGIN_BACKOFF, 0);
			if (a.ok) await a.attempt.failed(i === 4 ? 5000 : 0);
		}
		expect(await throttle.admit("k", LOGIN_BACKOFF, 5500)).toEqual({ ok: false, retryAfterS: 1 });
		expect((await throttle.admit("k", LOGIN_BACKOFF, 6000)).ok).toBe(true);
	});

	it("forgets failures a day old, and takes back the slot of a success", async () => {
		const throttle = new MemoryLoginThrottle();
		for (let i = 0; i < 5; i++) expect((await throttle.admit("k", LOGIN_BACKOFF, 0)).ok).toBe(true);
		expect((await throttle.admit("k", LOGIN_BACKOFF, 10)).ok).toBe(false);
		const later = await throttle.admit("k", LOGIN_BACKOFF, LOGIN_BACKOFF.memoryMs + 1);
		expect(later.ok).toBe(true);
		if (later.ok) await later.attempt.succeeded();
		for (let i = 0; i < 4; i++) expect((await throttle.admit("k", LOGIN_BACKOFF, LOGIN_BACKOFF.memoryMs + 2)).ok).toBe(true);
	});
});

describe("known IPs", () => {
	it("keeps the 20 most recent IPs of a login for 90 days", async () => {
		const known = new MemoryKnownIps();
		for (let i = 0; i <= KNOWN_IPS_PER_LOGIN; i++) await known.remember("login", `ip${i}`, i);
		expect(await known.has("login", "ip0", 100)).toBe(false);
		expect(await known.has("login", "ip1", 100)).toBe(true);
		expect(await known.has("other", "ip1", 100)).toBe(false);
		expect(await known.has("login", `ip${KNOWN_IPS_PER_LOGIN}`, KNOWN_IPS_PER_LOGIN + KNOWN_IP_TTL_MS)).toBe(false);
	});
});
