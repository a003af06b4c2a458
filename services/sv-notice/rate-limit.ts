import { Lru } from "../../kernel/lru.ts";
import type { RateLimit, RateLimiter } from "../../mixins/gateway/rate-limiter.ts";
import type { ExternalChannel } from "./categories.ts";
import type { Delivery, NoticeProvider, Recipient } from "./providers.ts";

/** Notices whose decision this node remembers, so a retry is neither counted again nor decided otherwise. */
const DECISIONS_KEPT = 10_000;

/**
 * At most `limit` notices per user per window on one channel. A notice over it is skipped on
 * this channel (logged and counted) rather than delayed: it is in the inbox already, and a delay
 * of up to an hour would hold back the user's later notices on the channel (they keep their order).
 */
export class RateLimitedProvider implements NoticeProvider {
	private readonly channel: ExternalChannel;
	private readonly inner: NoticeProvider;
	private readonly limiter: RateLimiter;
	private readonly limit: RateLimit;
	private readonly onSkipped: (delivery: Delivery) => void;
	private readonly decided = new Lru<boolean>(DECISIONS_KEPT);
	/** Notices this node skipped. */
	skipped = 0;

	constructor(opts: { channel: ExternalChannel; inner: NoticeProvider; limiter: RateLimiter; limit: RateLimit; onSkipped: (delivery: Delivery) => void }) {
		this.channel = opts.channel;
		this.inner = opts.inner;
		this.limiter = opts.limiter;
		this.limit = opts.limit;
		this.onSkipped = opts.onSkipped;
	}

	async deliver(delivery: Delivery, resolve: (userId: string) => Promise<Recipient>): Promise<void> {
		let allowed = this.decided.get(delivery.noticeId);
		if (allowed === undefined) {
			allowed = (await this.limiter.hit(`notice:${this.channel}:${delivery.userId}`, this.limit)).ok;
			this.decided.set(delivery.noticeId, allowed);
		}
		if (!allowed) {
			this.skipped++;
			this.onSkipped(delivery);
			return;
		}
		await this.inner.deliver(delivery, resolve);
	}

	close(): Promise<void> {
		return this.inner.close?.() ?? Promise.resolve();
	}
}
