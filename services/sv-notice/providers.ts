import type { ExternalChannel } from "./categories.ts";

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

export interface NoticeProvider {
	/** Delivers or throws (the channel tries again later); `resolve` gives what the provider needs of the user (an address). */
	deliver(delivery: Delivery, resolve: (userId: string) => Promise<{ email: string | null }>): Promise<void>;
	close?(): Promise<void>;
}

export type Providers = Partial<Record<ExternalChannel, NoticeProvider>>;

/** The providers this region's configuration turns on. */
export function providersFromEnv(_env: NodeJS.ProcessEnv): Providers {
	return {};
}
