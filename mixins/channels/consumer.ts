import type { Logger } from "moleculer";
import type { ResolvedDeclaration } from "./declaration.ts";
import type { ChannelStats } from "./stats.ts";
import type { ChannelStore, Consumption, Delivery } from "./store.ts";

/** A channel declaration's delivery settings (a forwarder's too), with how long failures wait. */
export type ConsumerSettings = Pick<ResolvedDeclaration, "channel" | "group" | "maxInFlight" | "maxRetries" | "ackWaitMs" | "deadLettering"> & {
	backoff: { baseMs: number; maxMs: number };
	/** An error no retry can cure: given up at once. */
	permanent?: (err: unknown) => boolean;
};

/** A failed delivery waits base·2^(attempt-1), capped, with up to 20 % jitter so failing nodes do not retry in step. */
export function backoffMs(attempt: number, { baseMs, maxMs }: ConsumerSettings["backoff"]): number {
	const delay = Math.min(maxMs, baseMs * 2 ** Math.min(attempt - 1, 30));
	return Math.round(delay * (1 + Math.random() * 0.2));
}

/**
 * Runs `run` for each delivery of a channel to a group: acknowledges after it succeeds, retries a
 * failure after a back-off, and gives up after maxRetries (dead letter, or a logged drop). A
 * delivery that arrives beyond maxRetries + 1 had its earlier runs cut short (a crash, or past
 * the ack wait): it is given up without running it again.
 */
export function startConsumer(
	store: ChannelStore,
	settings: ConsumerSettings,
	run: (delivery: Delivery) => Promise<void>,
	stats: ChannelStats,
	logger: Logger
): Promise<Consumption> {
	const deliveries = settings.maxRetries + 1;
	const giveUp = async (delivery: Delivery, err: unknown, attempts: number) => {
		const e = err as { message?: string; type?: string };
		const error = e?.message ?? String(err);
		const id = delivery.message.id;
		if (settings.deadLettering) {
			await delivery.deadLetter({ error, attempts, ...(typeof e?.type === "string" ? { errorType: e.type } : {}) });
			stats.deadLettered();
			logger.warn(`channel ${settings.channel} (${settings.group}): message ${id} dead-lettered after ${attempts} attempts: ${error}`);
		} else {
			await delivery.ack();
			logger.error(`channel ${settings.channel} (${settings.group}): message ${id} dropped after ${attempts} attempts: ${error}`);
		}
	};
	const handle = async (delivery: Delivery) => {
		stats.counts.inFlight++;
		if (delivery.attempt > 1) stats.redelivered();
		// Long handlers keep their lease: without this a slow success would be delivered twice.
		const keepAlive = setInterval(() => void delivery.keepAlive().catch(() => undefined), Math.max(500, settings.ackWaitMs / 3));
		try {
			if (delivery.attempt > deliveries) {
				await giveUp(delivery, new Error(`not finished in ${deliveries} deliveries: its handler crashed or ran past the ack wait`), delivery.attempt - 1);
				return;
			}
			try {
				await run(delivery);
			} catch (err) {
				if (delivery.attempt >= deliveries || settings.permanent?.(err)) await giveUp(delivery, err, delivery.attempt);
				else await delivery.retryIn(backoffMs(delivery.attempt, settings.backoff));
				return;
			}
			await delivery.ack();
			stats.acknowledged();
		} catch (err) {
			// The store could not take the outcome (connection lost): the lease runs out and the message comes back.
			logger.warn(`channel ${settings.channel} (${settings.group}): settling message ${delivery.message.id} failed: ${(err as Error).message}`);
		} finally {
			clearInterval(keepAlive);
			stats.counts.inFlight--;
		}
	};
	const onError = (err: Error) => logger.warn(`channel ${settings.channel} (${settings.group}): ${err.message}`);
	return store.consume(settings.channel, settings.group, { maxInFlight: settings.maxInFlight, ackWaitMs: settings.ackWaitMs, onError }, handle);
}
