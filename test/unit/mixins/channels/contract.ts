import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { ChannelError } from "../../../../mixins/channels/errors.ts";
import type { ChannelMessage, ChannelStore, Consumption, Delivery } from "../../../../mixins/channels/store.ts";

async function rejection(promise: Promise<unknown>): Promise<ChannelError> {
	try {
		await promise;
	} catch (err) {
		expect(err).toBeInstanceOf(ChannelError);
		return err as ChannelError;
	}
	throw new Error("expected a rejection");
}

async function until(what: string, check: () => boolean, timeoutMs = 8000): Promise<void> {
	const deadline = Date.now() + timeoutMs;
	while (!check()) {
		if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
		await sleep(10);
	}
}

let counter = 0;
const message = (channel: string, n: number, extra: Partial<ChannelMessage> = {}): ChannelMessage => ({
	id: `m-${n}-${counter}`,
	channel,
	payload: JSON.stringify({ n }),
	headers: {},
	...extra
});
const n = (d: Delivery) => (JSON.parse(d.message.payload) as { n: number }).n;

/**
 * The promises of mixins/channels/store.ts, for any store. `open` is called more than once per
 * test: each call must give a new store on the same storage (a second node, or the same node restarted).
 */
export function channelStoreContract(name: string, open: () => Promise<ChannelStore>, cleanup?: () => Promise<void>): void {
	describe(`channel store contract: ${name}`, () => {
		let stores: ChannelStore[] = [];
		let consumptions: Consumption[] = [];
		let channel: string;
		const openStore = async () => {
			const store = await open();
			stores.push(store);
			return store;
		};
		/** Records every delivery; `settle` decides what to do with each (ack by default). */
		const consume = async (store: ChannelStore, group: string, settle: (d: Delivery) => Promise<void> = d => d.ack(), opts = {}) => {
			const seen: Delivery[] = [];
			const consumption = await store.consume(channel, group, { maxInFlight: 10, ackWaitMs: 1000, ...opts }, async d => {
				seen.push(d);
				await settle(d);
			});
			consumptions.push(consumption);
			return { seen, consumption };
		};

		beforeEach(() => {
			counter++;
			channel = `contract.c${counter}`;
		});
		afterEach(async () => {
			await Promise.all(consumptions.map(c => c.stop()));
			await Promise.all(stores.map(s => s.close()));
			consumptions = [];
			stores = [];
		});
		if (cleanup) afterAll(cleanup);

		it("delivers a stored message with its id, key, headers and payload, once, after its group acknowledges it", async () => {
			const store = await openStore();
			await store.declare(channel, "g");
			const { seen } = await consume(store, "g");
			expect(await store.publish(message(channel, 1, { key: "k1", headers: { "x-a": "1" } }))).toEqual({ duplicate: false });
			await until("the delivery", () => seen.length === 1);
			expect(seen[0]!.message).toMatchObject({ id: `m-1-${counter}`, channel, key: "k1", headers: { "x-a": "1" } });
			expect(n(seen[0]!)).toBe(1);
			expect(seen[0]!.attempt).toBe(1);
			// Past the ack wait: an unacknowledged message would have come back by now.
			await sleep(1500);
			expect(seen).toHaveLength(1);
			expect(await store.pending(channel, "g")).toBe(0);
		});

		it("refuses a channel no one declared with UNKNOWN_CHANNEL, and an invalid name with INVALID_CHANNEL_NAME", async () => {
			const store = await openStore();
			expect((await rejection(store.publish(message(`${channel}.nobody`, 1)))).type).toBe("UNKNOWN_CHANNEL");
			for (const bad of ["has space", "a..b", "*", ">", "", "x".repeat(101)])
				expect((await rejection(store.publish(message(bad, 1)))).type).toBe("INVALID_CHANNEL_NAME");
		});

		it("stores a message id only once", async () => {
			const store = await openStore();
			await store.declare(channel, "g");
			expect(await store.publish(message(channel, 1))).toEqual({ duplicate: false });
			expect(await store.publish(message(channel, 1))).toEqual({ duplicate: true });
			const { seen } = await consume(store, "g");
			await until("the delivery", () => seen.length === 1);
			await sleep(300);
			expect(seen).toHaveLength(1);
		});

		it("finds the declared channels that start with a prefix, declaring nothing in looking", async () => {
			const store = await openStore();
			await store.declare(`${channel}.b`);
			await store.declare(`${channel}.a`, "g");
			await store.declare(`${channel}-other`);
			expect(await store.declaredWith(`${channel}.`)).toEqual([`${channel}.a`, `${channel}.b`]);
			expect(await store.declaredWith(`${channel}.none`)).toEqual([]);
			expect(
				(await store.channels())
					.map(c => c.channel)
					.filter(c => c.startsWith(channel))
					.sort()
			).toEqual([`${channel}-other`, `${channel}.a`, `${channel}.b`]);
		});

		it("gives every group every message, and each message of a group to only one of its consumers", async () => {
			const a = await openStore();
			const b = await openStore();
			await a.declare(channel, "one");
			await a.declare(channel, "two");
			for (let i = 0; i < 20; i++) await a.publish(message(channel, i));
			const one1 = await consume(a, "one");
			const one2 = await consume(b, "one");
			const two = await consume(b, "two");
			await until("all deliveries", () => one1.seen.length + one2.seen.length === 20 && two.seen.length === 20);
			await sleep(300);
			const shared = [...one1.seen, ...one2.seen].map(n).sort((x, y) => x - y);
			expect(shared).toEqual(Array.from({ length: 20 }, (_, i) => i));
			expect(two.seen.map(n).sort((x, y) => x - y)).toEqual(shared);
			console.log(`group "one": consumer 1 handled ${one1.seen.length}, consumer 2 handled ${one2.seen.length}`);
		});

		it("delivers a failed message again after its back-off, counting the attempt", async () => {
			const store = await openStore();
			await store.declare(channel, "g");
			const { seen } = await consume(store, "g", d => (d.attempt === 1 ? d.retryIn(400) : d.ack()));
			const sent = Date.now();
			await store.publish(message(channel, 1));
			await until("the second delivery", () => seen.length === 2);
			expect(seen.map(d => d.attempt)).toEqual([1, 2]);
			expect(Date.now() - sent).toBeGreaterThanOrEqual(380);
		});

		it("gives a message its consumer left unsettled (a crash) to another consumer after the ack wait", async () => {
			const first = await openStore();
			await first.declare(channel, "g");
			const crashed = await consume(first, "g", async () => undefined);
			await first.publish(message(channel, 1));
			await until("the first delivery", () => crashed.seen.length === 1);
			await crashed.consumption.stop();
			const second = await openStore();
			const { seen } = await consume(second, "g");
			await until("the redelivery", () => seen.length === 1);
			expect(seen[0]!.attempt).toBe(2);
			expect(n(seen[0]!)).toBe(1);
		});

		it("keeps a kept-alive delivery from anyone else past the ack wait", async () => {
			const store = await openStore();
			await store.declare(channel, "g");
			// Three ack waits long, kept alive several times per wait: a machine must stall for most of a wait to break it.
			const { seen } = await consume(
				store,
				"g",
				async d => {
					for (let i = 0; i < 15; i++) {
						await sleep(300);
						await d.keepAlive();
					}
					await d.ack();
				},
				{ ackWaitMs: 1500 }
			);
			await store.publish(message(channel, 1));
			await sleep(5000);
			expect(seen).toHaveLength(1);
		});

		it("hands a key's messages over one at a time, in order, while other messages go by", async () => {
			const store = await openStore();
			await store.declare(channel, "g");
			let release: () => void = () => undefined;
			const held = new Promise<void>(r => (release = r));
			const { seen } = await consume(store, "g", async d => {
				if (n(d) === 1) await held;
				await d.ack();
			});
			await store.publish(message(channel, 1, { key: "a" }));
			await store.publish(message(channel, 2, { key: "a" }));
			await store.publish(message(channel, 3, { key: "a" }));
			await store.publish(message(channel, 4));
			await until("the unkeyed message", () => seen.some(d => n(d) === 4));
			await sleep(300);
			expect(seen.map(n).filter(x => x !== 4)).toEqual([1]);
			release();
			await until("the rest of the key", () => seen.length === 4);
			expect(seen.map(n).filter(x => x !== 4)).toEqual([1, 2, 3]);
		});

		it("keeps a dead letter with its error and attempts, and replays it to its group only", async () => {
			const store = await openStore();
			await store.declare(channel, "g");
			await store.declare(channel, "other");
			const g = await consume(store, "g", d =>
				d.attempt === 1 && !d.message.headers["x-replay-of"] ? d.deadLetter({ error: "boom", errorType: "E_BOOM", attempts: 3 }) : d.ack()
			);
			const other = await consume(store, "other");
			await store.publish(message(channel, 7, { key: "k" }));
			await until("both groups' deliveries", () => g.seen.length === 1 && other.seen.length === 1);
			// Seen when delivered: the dead letter (and, the first time, its stream) is stored while the handler settles.
			await expect.poll(async () => (await store.deadLetters(channel, 10)).length, { timeout: 3000, interval: 50 }).toBe(1);
			const dead = await store.deadLetters(channel, 10);
			expect(dead[0]).toMatchObject({ id: `m-7-${counter}`, channel, group: "g", key: "k", error: "boom", errorType: "E_BOOM", attempts: 3 });
			expect(JSON.parse(dead[0]!.payload)).toEqual({ n: 7 });
			await expect.poll(() => store.pending(channel, "g"), { timeout: 3000, interval: 50 }).toBe(0);

			const replayed = await store.replay(channel, dead[0]!.id);
			expect(replayed.id).not.toBe(dead[0]!.id);
			await until("the replay", () => g.seen.length === 2);
			expect(g.seen[1]!.message.headers["x-replay-of"]).toBe(dead[0]!.id);
			expect(n(g.seen[1]!)).toBe(7);
			await sleep(300);
			expect(other.seen).toHaveLength(1);
			expect(await store.deadLetters(channel, 10)).toEqual([]);
			expect((await rejection(store.replay(channel, dead[0]!.id))).type).toBe("DEAD_LETTER_NOT_FOUND");
		});

		it("counts what a group has not acknowledged yet", async () => {
			const store = await openStore();
			await store.declare(channel, "g");
			for (let i = 0; i < 5; i++) await store.publish(message(channel, i));
			expect(await store.pending(channel, "g")).toBe(5);
			const { seen } = await consume(store, "g");
			await until("all five", () => seen.length === 5);
			// Acks may reach the server a moment after the handler returned.
			await expect.poll(() => store.pending(channel, "g"), { timeout: 3000, interval: 50 }).toBe(0);
			expect(await store.channels()).toContainEqual({ channel, groups: ["g"] });
		});

		it("keeps stored messages across a restart of the store", async () => {
			const before = await openStore();
			await before.declare(channel, "g");
			for (let i = 0; i < 3; i++) await before.publish(message(channel, i));
			await before.close();
			const after = await openStore();
			const { seen } = await consume(after, "g");
			await until("the three messages", () => seen.length === 3);
			expect(seen.map(n).sort()).toEqual([0, 1, 2]);
		});
	});
}
