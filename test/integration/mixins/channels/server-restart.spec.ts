import { setTimeout as sleep } from "node:timers/promises";
import { ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChannelDelivery, ChannelStore } from "../../../../mixins/channels/index.ts";
import { ChannelError, openJetStreamChannels } from "../../../../mixins/channels/index.ts";
import { Channels } from "../../../../mixins/channels.mixin.ts";
import type { OwnJetStream } from "../../../harness/channels-nats.ts";
import { startOwnJetStream } from "../../../harness/channels-nats.ts";

let server: OwnJetStream;
beforeAll(async () => {
	server = await startOwnJetStream();
});
afterAll(async () => {
	await server?.stop();
});

/** Sends until the store takes it: while the server is down a send fails, retryable, and stores nothing. */
async function sendStored(broker: ServiceBroker, payload: { n: number }): Promise<number> {
	for (let refusals = 0; ; refusals++) {
		try {
			await broker.sendToChannel("restart.test", payload);
			return refusals;
		} catch (err) {
			if (!(err instanceof ChannelError) || err.type !== "CHANNEL_UNAVAILABLE" || !err.retryable) throw err;
			await sleep(100);
		}
	}
}

describe("channels on a JetStream server that is killed and restarted", () => {
	it("loses no stored message and hands every one to the handler", async () => {
		const handled = new Map<number, number>();
		const open = (): Promise<ChannelStore> => openJetStreamChannels({ servers: server.url, namespace: "restart", timeoutMs: 1000 });
		const consumerStore = await open();
		const producerStore = await open();
		const consumer = new ServiceBroker({ logger: false, middlewares: [Channels({ store: consumerStore })] });
		consumer.createService({
			name: "restart-consumer",
			channels: {
				"restart.test": {
					ackWaitMs: 2000,
					async handler(msg: ChannelDelivery<{ n: number }>) {
						await sleep(10);
						handled.set(msg.payload.n, (handled.get(msg.payload.n) ?? 0) + 1);
					}
				}
			}
		});
		const producer = new ServiceBroker({ logger: false, middlewares: [Channels({ store: producerStore })] });
		await consumer.start();
		await producer.start();
		try {
			for (let n = 0; n < 100; n++) await sendStored(producer, { n });
			// Killed with most of the first hundred still waiting or in flight.
			await server.kill();
			await expectRefusedWhileDown(producer);
			await server.start();
			let refusals = 0;
			for (let n = 100; n < 150; n++) refusals += await sendStored(producer, { n });
			await expect.poll(() => handled.size, { timeout: 25_000, interval: 100 }).toBe(150);
			const twice = [...handled.values()].filter(c => c > 1).length;
			console.log(
				`stored 150 (100 before the kill, 50 after the restart, ${refusals} sends refused while it came back); handled ${handled.size} distinct, ${twice} more than once`
			);
			expect([...handled.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: 150 }, (_, i) => i));
		} finally {
			await producer.stop();
			await consumer.stop();
			await producerStore.close();
			await consumerStore.close();
		}
	});
});

/** A send while the server is down fails with CHANNEL_UNAVAILABLE (retryable) instead of pretending. */
async function expectRefusedWhileDown(broker: ServiceBroker): Promise<void> {
	const err = await broker.sendToChannel("restart.test", { n: -1 }).catch((e: unknown) => e);
	expect(err).toBeInstanceOf(ChannelError);
	expect((err as ChannelError).type).toBe("CHANNEL_UNAVAILABLE");
	expect((err as ChannelError).retryable).toBe(true);
}
