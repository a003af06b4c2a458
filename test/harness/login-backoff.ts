import { expect } from "vitest";
import type { LoginThrottle } from "../../services/auth-jwt/login-throttle.ts";
import { LOGIN_BACKOFF } from "../../services/auth-jwt/login-throttle.ts";

/** The waits (s) a login is told between 17 failures made as fast as allowed. */
export const BACKED_OFF_WAITS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900];

/** Makes `attempts` failures of `key` from `start`, each as soon as allowed; the waits it was told. */
export async function hammer(throttle: LoginThrottle, key: string, start: number, attempts: number): Promise<number[]> {
	const waits: number[] = [];
	let now = start;
	for (let i = 0; i < attempts; i++) {
		const a = await throttle.admit(key, LOGIN_BACKOFF, now);
		if (a.ok) continue;
		waits.push(a.retryAfterS);
		// Refused again a moment later: the wait did not grow.
		expect(await throttle.admit(key, LOGIN_BACKOFF, now + 1)).toEqual({ ok: false, retryAfterS: a.retryAfterS });
		now += a.retryAfterS * 1000;
		i--;
	}
	return waits;
}
