import { randomUUID } from "node:crypto";
import type { ServiceBroker } from "moleculer";
import { channelsOf } from "../../mixins/channels/runtime.ts";
import { within } from "./waiting.ts";

/**
 * A dead letter of `notice.webhook` in the channel store of `broker`'s region, as sv-notice leaves
 * one it gave up on (a receiver that kept answering 503); its id.
 */
export async function deadNoticeLetter(broker: ServiceBroker, delivery: { userId: string; title: string }): Promise<string> {
	const store = channelsOf(broker).store;
	const id = randomUUID();
	const payload = {
		noticeId: randomUUID(),
		userId: delivery.userId,
		category: "account",
		title: delivery.title,
		text: delivery.title,
		html: `<p>${delivery.title}</p>`,
		createdAt: new Date().toISOString()
	};
	await store.declare("notice.webhook", "dead-letter-maker");
	await store.publish({ id, channel: "notice.webhook", payload: JSON.stringify(payload), headers: {} });
	const consumption = await store.consume("notice.webhook", "dead-letter-maker", { maxInFlight: 1, ackWaitMs: 30_000 }, d =>
		d.deadLetter({ error: "webhook delivery failed: the receiver answered 503", errorType: "NOTICE_DELIVERY_FAILED", attempts: 9 })
	);
	await within(async () => (await store.deadLetters("notice.webhook", 10)).some(d => d.id === id), 5000);
	await consumption.stop();
	return id;
}
