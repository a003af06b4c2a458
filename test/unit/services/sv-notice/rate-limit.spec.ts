import { describe, expect, it } from "vitest";
import { MemoryRateLimiter } from "../../../../mixins/gateway/rate-limiter.ts";
import type { Delivery, NoticeProvider } from "../../../../services/sv-notice/providers.ts";
import { RateLimitedProvider } from "../../../../services/sv-notice/rate-limit.ts";

const delivery = (noticeId: string, userId = "u1"): Delivery => ({
	noticeId,
	userId,
	category: "wallet",
	title: "t",
	text: "x",
	html: "<p>x</p>",
	createdAt: new Date().toISOString()
});
const resolve = async () => ({ email: "u@example.com" });

function limited(max: number) {
	const sent: string[] = [];
	const skipped: string[] = [];
	let failing = false;
	const inner: NoticeProvider = {
		async deliver(d) {
			if (failing) throw new Error("provider down");
			sent.push(d.noticeId);
		}
	};
	const provider = new RateLimitedProvider({
		channel: "email",
		inner,
		limiter: new MemoryRateLimiter(),
		limit: { max, windowMs: 3600_000 },
		onSkipped: d => skipped.push(d.noticeId)
	});
	return { provider, sent, skipped, fail: (on: boolean) => (failing = on) };
}

describe("the per-user, per-channel rate of notices", () => {
	it("sends a user's notices up to the limit, then skips (and reports) the rest; other users are not held back", async () => {
		const { provider, sent, skipped } = limited(3);
		for (let i = 1; i <= 5; i++) await provider.deliver(delivery(`n${i}`), resolve);
		await provider.deliver(delivery("other", "u2"), resolve);
		expect(sent).toEqual(["n1", "n2", "n3", "other"]);
		expect(skipped).toEqual(["n4", "n5"]);
		expect(provider.skipped).toBe(2);
	});

	it("counts a notice once, however often its delivery is retried", async () => {
		const { provider, sent, fail } = limited(2);
		fail(true);
		for (let attempt = 0; attempt < 5; attempt++) await expect(provider.deliver(delivery("retried"), resolve)).rejects.toThrow("provider down");
		fail(false);
		await provider.deliver(delivery("retried"), resolve);
		await provider.deliver(delivery("next"), resolve);
		expect(sent).toEqual(["retried", "next"]);
	});
});
