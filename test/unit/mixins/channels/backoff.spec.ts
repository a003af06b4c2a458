import { describe, expect, it } from "vitest";
import { backoffMs } from "../../../../mixins/channels/consumer.ts";

const settings = { baseMs: 100, maxMs: 60_000 };

describe("a failed delivery's back-off", () => {
	it("doubles from the base per attempt, with up to 20 % jitter on top", () => {
		for (let attempt = 1; attempt <= 8; attempt++) {
			const plain = 100 * 2 ** (attempt - 1);
			for (let i = 0; i < 200; i++) {
				const delay = backoffMs(attempt, settings);
				expect(delay).toBeGreaterThanOrEqual(plain);
				expect(delay).toBeLessThanOrEqual(plain * 1.2);
			}
		}
	});

	it("stops growing at the cap (jitter included), however many attempts failed", () => {
		for (const attempt of [11, 20, 10_000]) {
			const delay = backoffMs(attempt, settings);
			expect(delay).toBeGreaterThanOrEqual(60_000);
			expect(delay).toBeLessThanOrEqual(72_000);
		}
	});

	it("jitters: failing deliveries of one attempt do not all wait the same", () => {
		const delays = new Set(Array.from({ length: 50 }, () => backoffMs(6, settings)));
		expect(delays.size).toBeGreaterThan(10);
	});
});
