import { describe, expect, it } from "vitest";
import { ReplayGuard } from "../../../../regions/runtime/replay-guard.ts";

describe("ReplayGuard", () => {
	const now = 1_000_000;

	it("admits a nonce once, and refuses it again while a copy could still pass the clock check", () => {
		const guard = new ReplayGuard(30_000, 10);
		expect(guard.admit("a", now, now)).toBeUndefined();
		expect(guard.admit("a", now, now + 1)).toBe("replayed");
		expect(guard.admit("a", now, now + 30_000)).toBe("replayed");
	});

	it("refuses a timestamp outside the window either way", () => {
		const guard = new ReplayGuard(30_000, 10);
		expect(guard.admit("old", now - 30_001, now)).toBe("expired");
		expect(guard.admit("ahead", now + 30_001, now)).toBe("expired");
		expect(guard.size).toBe(0);
	});

	it("forgets nonces after twice the window, and refuses rather than forgets when full", () => {
		const guard = new ReplayGuard(1000, 2);
		expect(guard.admit("a", now, now)).toBeUndefined();
		expect(guard.admit("b", now, now)).toBeUndefined();
		expect(guard.admit("c", now, now)).toBe("busy");
		expect(guard.admit("c", now + 2001, now + 2001)).toBeUndefined();
		expect(guard.size).toBe(1);
	});
});
