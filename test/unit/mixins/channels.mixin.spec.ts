import type { Context, ServiceSchema } from "moleculer";
import { ServiceBroker } from "moleculer";
import { afterEach, describe, expect, it } from "vitest";
import type { ChannelDelivery } from "../../../mixins/channels/index.ts";
import { CHANNELS_SERVICE, ChannelError, MAX_PAYLOAD_BYTES, openSqliteChannels } from "../../../mixins/channels/index.ts";
import { Channels } from "../../../mixins/channels.mixin.ts";
import { RequestContextMiddleware } from "../../../regions/runtime/request-context.ts";

let brokers: ServiceBroker[] = [];
afterEach(async () => {
	await Promise.all(brokers.map(b => b.stop()));
	brokers = [];
});

async function start(...schemas: ServiceSchema[]): Promise<ServiceBroker> {
	const store = openSqliteChannels(":memory:");
	const broker = new ServiceBroker({ logger: false, middlewares: [RequestContextMiddleware, Channels({ store })] });
	broker.localBus.on("$broker.stopped", () => void store.close());
	brokers.push(broker);
	broker.createService(CHANNELS_SERVICE);
	for (const schema of schemas) broker.createService(schema);
	await broker.start();
	return broker;
}

async function rejection(promise: Promise<unknown>): Promise<ChannelError> {
	const err = await promise.then(
		() => undefined,
		(e: unknown) => e
	);
	expect(err).toBeInstanceOf(ChannelError);
	return err as ChannelError;
}

const sink = (seen: ChannelDelivery[]): ServiceSchema => ({
	name: "sink",
	channels: {
		"orders.created": {
			handler(msg: ChannelDelivery) {
				seen.push(msg);
			}
		}
	}
});

describe("channels: declaring", () => {
	const declared = (channels: unknown) => () =>
		new ServiceBroker({ logger: false, middlewares: [Channels({ store: openSqliteChannels(":memory:") })] }).createService({
			name: "svc",
			channels
		} as ServiceSchema);

	it("refuses a bad declaration when the service is created, naming the service, channel and option", () => {
		const cases: [unknown, RegExp][] = [
			[{ "Bad Name": { handler() {} } }, /service "svc": invalid channel name "Bad Name"/],
			[{ ok: {} }, /channel "ok": handler must be a function/],
			[{ ok: { handler() {}, maxRetries: -1 } }, /channel "ok": maxRetries must be an integer from 0 to 10000/],
			[{ ok: { handler() {}, maxInFlight: 1.5 } }, /maxInFlight must be an integer from 1 to 1000/],
			[{ ok: { handler() {}, maxBackoffMs: 10 } }, /maxBackoffMs must be an integer from 100 to 300000/],
			[{ ok: { handler() {}, ackWaitMs: 10 } }, /ackWaitMs must be an integer from 1000/],
			[{ ok: { handler() {}, group: "a.b" } }, /group "a.b" must be 1 to 64/],
			[{ ok: { handler() {}, deadLettering: true } }, /deadLettering must be \{ enabled: true \| false \}/],
			[{ ok: { handler() {}, keyOf: "id" } }, /keyOf must be a function/],
			[{ ok: { handler() {}, retries: 3 } }, /unknown option "retries"/],
			[[], /`channels` must be an object/]
		];
		for (const [channels, message] of cases) {
			let caught: unknown;
			try {
				declared(channels)();
			} catch (err) {
				caught = err;
			}
			expect(caught, String(message)).toBeInstanceOf(ChannelError);
			expect((caught as ChannelError).type).toBe("INVALID_CHANNEL_DECLARATION");
			expect((caught as ChannelError).message).toMatch(message);
		}
	});
});

describe("channels: sending", () => {
	it("refuses bad input with a stable type and code, and stores nothing", async () => {
		const seen: ChannelDelivery[] = [];
		const broker = await start(sink(seen));
		const cases: [Promise<unknown>, string, number][] = [
			[broker.sendToChannel("orders.nobody", {}), "UNKNOWN_CHANNEL", 404],
			[broker.sendToChannel("Orders Created", {}), "INVALID_CHANNEL_NAME", 400],
			[broker.sendToChannel("OUTBOX-cn-east", {}), "INVALID_CHANNEL_NAME", 400],
			[broker.sendToChannel("orders.created", { blob: "x".repeat(MAX_PAYLOAD_BYTES) }), "PAYLOAD_TOO_LARGE", 413],
			[broker.sendToChannel("orders.created", { n: 1 }, { key: "" }), "INVALID_CHANNEL_MESSAGE", 400],
			[broker.sendToChannel("orders.created", { n: 1 }, { headers: { "bad header": "x" } }), "INVALID_CHANNEL_MESSAGE", 400],
			[broker.sendToChannel("orders.created", { n: 1 }, { region: "mars" }), "UNKNOWN_REGION", 404]
		];
		for (const [promise, type, code] of cases) {
			const err = await rejection(promise);
			expect({ type: err.type, code: err.code }).toEqual({ type, code });
			expect(err.message.length).toBeLessThan(300);
		}
		const rows = await broker.call<{ channels: { channel: string; pending: number }[] }, unknown>("$channels.list", {});
		expect(rows.channels).toEqual([expect.objectContaining({ channel: "orders.created", pending: 0 })]);
		expect(seen).toEqual([]);
		console.log(`refused ${cases.length} bad sends; stored 0`);
	});

	it("gives the handler a context with the sender's request id and trace header", async () => {
		const seen: ChannelDelivery[] = [];
		const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
		const broker = await start(sink(seen), {
			name: "producer",
			actions: {
				place(ctx: Context) {
					return ctx.broker.sendToChannel("orders.created", { order: 1 }, { ctx, key: "order-1" });
				},
				placeImplicitly(ctx: Context) {
					void ctx;
					return this.broker.sendToChannel("orders.created", { order: 2 });
				}
			}
		});
		await broker.call("producer.place", {}, { requestID: "req-explicit-1", meta: { traceparent } });
		await broker.call("producer.placeImplicitly", {}, { requestID: "req-implicit-2" });
		await expect.poll(() => seen.length, { timeout: 3000 }).toBe(2);
		const byOrder = Object.fromEntries(seen.map(m => [(m.payload as { order: number }).order, m]));
		expect(byOrder[1]!.ctx.requestID).toBe("req-explicit-1");
		expect(byOrder[1]!.ctx.meta).toEqual({ traceparent });
		expect(byOrder[1]!.ctx.params).toEqual({ order: 1 });
		expect(byOrder[1]!.key).toBe("order-1");
		expect(byOrder[1]!.headers).toMatchObject({ "x-request-id": "req-explicit-1", traceparent });
		// Without a context given, the request being handled is the one that travels.
		expect(byOrder[2]!.ctx.requestID).toBe("req-implicit-2");
	});

	it("keys a message by the channel's declared keyOf when the sender gives no key", async () => {
		const seen: ChannelDelivery[] = [];
		const broker = await start({
			name: "keyed",
			channels: {
				"orders.created": {
					keyOf: (p: { customer: string }) => `customer-${p.customer}`,
					handler(msg: ChannelDelivery) {
						seen.push(msg);
					}
				}
			}
		});
		await broker.sendToChannel("orders.created", { customer: "ann" });
		await broker.sendToChannel("orders.created", { customer: "bob" }, { key: "explicit" });
		await expect.poll(() => seen.map(m => m.key).sort(), { timeout: 3000 }).toEqual(["customer-ann", "explicit"]);
	});
});
