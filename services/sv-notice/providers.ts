import type { Logger, ServiceBroker } from "moleculer";
import { MemoryRateLimiter, RedisRateLimiter } from "../../mixins/gateway/rate-limiter.ts";
import type { Env } from "../../regions/runtime/env.ts";
import { envInt } from "../../regions/runtime/env.ts";
import { METRIC } from "../../regions/runtime/metric-names.ts";
import { regionRuntimeOf } from "../../regions/runtime/region-runtime.ts";
import type { ExternalChannel } from "./categories.ts";
import { EmailProvider, emailSettingsFromEnv } from "./email.ts";
import { RateLimitedProvider } from "./rate-limit.ts";
import { WebhookProvider, webhookSettingsFromEnv } from "./webhook.ts";

/**
 * Where a notice goes beyond the inbox. A channel is on in a region only when it is configured;
 * a notice is queued for it in the same transaction as its inbox entry, and delivered from the
 * durable channel `notice.<channel>` with retries, back-off and dead letters.
 */

/** What a delivery carries: the rendered notice and nothing of the data it was made from. */
export interface Delivery {
	noticeId: string;
	userId: string;
	category: string;
	title: string;
	text: string;
	html: string;
	createdAt: string;
}

/** What a provider learns of the user when it delivers: the address as it is now. */
export interface Recipient {
	email: string | null;
}

export interface NoticeProvider {
	/** Delivers or throws (the channel tries again later); `resolve` gives what the provider needs of the user (an address). */
	deliver(delivery: Delivery, resolve: (userId: string) => Promise<Recipient>): Promise<void>;
	close?(): Promise<void>;
}

export type Providers = Partial<Record<ExternalChannel, NoticeProvider>>;

/** One hour: the window of EDGEHOME_NOTICE_RATE_PER_HOUR. */
const RATE_WINDOW_MS = 3600_000;

/**
 * The providers this region's configuration turns on, each held to the per-user, per-channel rate
 * (EDGEHOME_NOTICE_RATE_PER_HOUR, 0: none), counted in the region's Redis when it has one (every
 * node of the region shares the count), in memory otherwise.
 */
export function providersFromEnv(env: Env, broker: ServiceBroker, logger: Logger): Providers {
	const email = emailSettingsFromEnv(env);
	const webhook = webhookSettingsFromEnv(env);
	const configured: Providers = {
		...(email ? { email: new EmailProvider(email, logger) } : {}),
		...(webhook ? { webhook: new WebhookProvider(webhook) } : {})
	};
	const perHour = envInt(env, "EDGEHOME_NOTICE_RATE_PER_HOUR", 60, 0, 1_000_000);
	if (perHour === 0) return configured;
	const redis = regionRuntimeOf(broker).stores.redis;
	const limiter = redis ? new RedisRateLimiter(redis) : new MemoryRateLimiter();
	const limited: Providers = {};
	for (const [channel, inner] of Object.entries(configured) as [ExternalChannel, NoticeProvider][])
		limited[channel] = new RateLimitedProvider({
			channel,
			inner,
			limiter,
			limit: { max: perHour, windowMs: RATE_WINDOW_MS },
			onSkipped: d => {
				logger.info(`notice ${d.noticeId}: user ${d.userId} is past ${perHour} ${channel} notices this hour; not sent by ${channel}`);
				if (broker.isMetricsEnabled()) broker.metrics.increment(METRIC.noticesRateLimited, { channel });
			}
		});
	return limited;
}
