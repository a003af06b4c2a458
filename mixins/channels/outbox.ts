import type { ConsumerSettings } from "./consumer.ts";
import { PERMANENT_CHANNEL_ERRORS } from "./errors.ts";
import type { ChannelMessage } from "./store.ts";

/**
 * A message for another region is first stored in this region's outbox channel for that region,
 * then forwarded by this region's nodes (one consumer group) to the target region's `$channels.accept`,
 * which stores it under the same id: a retry after a crash between the two stores nothing new.
 * A region out of reach only delays its messages; they wait in the outbox, in order per key.
 */
export const TARGET_HEADER = "x-channel-target";
export const FORWARDER_GROUP = "forwarder";
/** How long one forward may take before it counts as failed and is tried again. */
const FORWARD_TIMEOUT_MS = 5000;

export const OUTBOX_PREFIX = "OUTBOX-";

export function outboxChannel(region: string): string {
	return `${OUTBOX_PREFIX}${region}`;
}

export function regionOfOutbox(channel: string): string {
	return channel.slice(OUTBOX_PREFIX.length);
}

export const FORWARDER_SETTINGS: Omit<ConsumerSettings, "channel"> = {
	group: FORWARDER_GROUP,
	maxInFlight: 32,
	// Nothing is lost to an outage, however long: only a message the target refuses outright is dead-lettered.
	maxRetries: Number.POSITIVE_INFINITY,
	// Twice a forward's own bound: a message a stopped node had pulled goes to another forwarder this soon.
	ackWaitMs: 2 * FORWARD_TIMEOUT_MS,
	deadLettering: true,
	backoff: { baseMs: 200, maxMs: 5000 },
	permanent: err => PERMANENT_CHANNEL_ERRORS.has((err as { type?: string })?.type ?? "")
};

/** What an outbox message becomes in the target region. */
export function forwarded(message: ChannelMessage): { channel: string; id: string; key?: string; headers: Record<string, string>; payload: string } {
	const { [TARGET_HEADER]: channel, ...headers } = message.headers;
	return { channel: channel ?? "", id: message.id, headers, payload: message.payload, ...(message.key === undefined ? {} : { key: message.key }) };
}

/** Sends one forwarded message to `region` through the region runtime's link. */
export type ForwardCall = (region: string, params: ReturnType<typeof forwarded>) => Promise<unknown>;

export function linkForwarder(call: (region: string, action: string, params: unknown, opts: object) => Promise<unknown>): ForwardCall {
	return (region, params) => call(region, "$channels.accept", params, { timeout: FORWARD_TIMEOUT_MS, retries: 0 });
}
