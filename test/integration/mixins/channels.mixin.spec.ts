import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Errors, ServiceBroker } from "moleculer";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { ChannelDelivery, ChannelStore, DeadLetter } from "../../../mixins/channels/index.ts";
import { CHANNELS_SERVICE, openJetStreamChannels, openSqliteChannels } from "../../../mixins/channels/index.ts";
import { Channels } from "../../../mixins/channels.mixin.ts";
import { METRIC } from "../../../regions/runtime/metric-names.ts";
import { OpsMetricsMiddleware } from "../../../regions/runtime/ops-metrics.ts";
import { deleteChannelStreams } from "../../harness/channels-streams.ts";
import { REAL, runId } from "../../harness/real-servers.ts";

const namespace = `t${runId()}`;
let nodes: { broker: ServiceBroker; store: ChannelStore }[] = [];

afterEach(async () => {
	for (const { broker, store } of nodes) {
		await broker.stop();
		await store.close();
	}
	nodes = [];
});
afterAll(() => deleteChannelStreams(namespace));

const dir = mkdtempSync(join(tmpdir(), "edgehome-channels-mixin-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Each node opens its own store on the shared storage: a JetStream connection, or the SQLite file. */
const STORES: [string, (test: string) => Promise<ChannelStore>][] = [
	["JetStream", async () => openJetStreamChannels({ servers: REAL.nats, namespace })],
	["SQLite file", async test => openSqliteChannels(join(dir, `${test}.channels.sqlite`))]
];

/** A node: its own broker and store, with metrics on. */
async function node(open: () => Promise<ChannelStore>, ...schemas: object[]): Promise<ServiceBroker> {
	const store = await open();
	const broker = new ServiceBroker({
		logger: false,
		metrics: { enabled: true, reporter: [] },
		middlewares: [OpsMetricsMiddleware, Channels({ store })]
	});
	broker.createService(CHANNELS_SERVICE);
	for (const schema of schemas) broker.createService(schema as never);
	await broker.start();
	nodes.push({ broker, store });
	return broker;
}

const metric = (broker: ServiceBroker, name: string, labels: Record<string, string>) => broker.metrics.getMetric(name)?.get(labels)?.value ?? undefined;

describe.each(STORES)("channels over %s", (kind, openStore) => {
	it("dead-letters a poison message after maxRetries with its error and attempts, counts it, and replays it", async () => {
		const runs: number[] = [];
		let cured = false;
		const broker = await node(() => openStore("poison"), {
			name: "billing",
			channels: {
				"invoices.due": {
					maxRetries: 2,
					handler(msg: ChannelDelivery<{ invoice: number }>) {
						runs.push(msg.attempt);
						if (!cured) throw new Errors.MoleculerError(`invoice ${msg.payload.invoice} is unreadable`, 422, "UNREADABLE_INVOICE");
					}
				}
			}
		});
		const { id } = await broker.sendToChannel("invoices.due", { invoice: 42 }, { key: "customer-7" });
		await expect
			.poll(() => broker.call<DeadLetter[], unknown>("$channels.deadLetters", { channel: "invoices.due" }), { timeout: 10_000, interval: 100 })
			.toEqual([
				expect.objectContaining({ id, group: "billing", key: "customer-7", error: "invoice 42 is unreadable", errorType: "UNREADABLE_INVOICE", attempts: 3 })
			]);
		expect(runs).toEqual([1, 2, 3]);
		const labels = { channel: "invoices.due", group: "billing" };
		expect(metric(broker, METRIC.channelDeadLettered, labels)).toBe(1);
		expect(metric(broker, METRIC.channelRedelivered, labels)).toBe(2);
		expect(metric(broker, METRIC.channelAcknowledged, labels)).toBe(0);
		console.log(`${kind}: poison message: ${runs.length} runs (attempts ${runs.join(", ")}), then dead-lettered with its error`);

		cured = true;
		const replayed = await broker.call<{ id: string }, unknown>("$channels.replay", { channel: "invoices.due", id });
		await expect.poll(() => runs.length, { timeout: 5000 }).toBe(4);
		await expect.poll(() => metric(broker, METRIC.channelAcknowledged, labels), { timeout: 3000 }).toBe(1);
		expect(replayed.id).not.toBe(id);
		expect(await broker.call("$channels.deadLetters", { channel: "invoices.due" })).toEqual([]);
		const list = await broker.call<{ store: string; channels: { channel: string; group: string; pending: number; node?: object }[] }, unknown>(
			"$channels.list",
			{}
		);
		expect(list.store).toBe(kind === "JetStream" ? "jetstream" : "sqlite");
		expect(list.channels).toContainEqual({
			channel: "invoices.due",
			group: "billing",
			pending: 0,
			node: { acknowledged: 1, redelivered: 2, deadLettered: 1, inFlight: 0 }
		});
	});

	it("stores a message sent again under the sender's own id once, and refuses an id that is not one", async () => {
		const seen: string[] = [];
		const broker = await node(() => openStore("own-id"), {
			name: "ledger-log",
			channels: {
				"entries.kept": {
					handler(msg: ChannelDelivery<{ n: number }>) {
						seen.push(`${msg.id} ${msg.payload.n}`);
					}
				}
			}
		});
		const id = "0f8e2a4c-7d1b-4a53-9b61-2c5e8f3d7a90";
		await broker.sendToChannel("entries.kept", { n: 1 }, { id });
		// A relay killed between sending and deleting its row sends it again.
		await broker.sendToChannel("entries.kept", { n: 1 }, { id });
		await broker.sendToChannel("entries.kept", { n: 2 });
		await expect(broker.sendToChannel("entries.kept", { n: 3 }, { id: "../not an id" })).rejects.toMatchObject({ type: "INVALID_CHANNEL_MESSAGE" });
		for (let i = 0; i < 50 && seen.length < 2; i++) await sleep(20);
		await sleep(200);
		expect(seen.filter(s => s.endsWith(" 1"))).toEqual([`${id} 1`]);
		expect(seen.map(s => s.split(" ")[1])).toEqual(["1", "2"]);
	});

	it("holds each key's order across two consumer nodes of one group, and both share the work", async () => {
		const handled: { node: string; key: string; seq: number }[] = [];
		const consumer = (nodeName: string) => ({
			name: "ledger",
			channels: {
				"ledger.entries": {
					maxInFlight: 8,
					async handler(msg: ChannelDelivery<{ key: string; seq: number }>) {
						await sleep(Math.random() * 4);
						handled.push({ node: nodeName, key: msg.payload.key, seq: msg.payload.seq });
					}
				}
			}
		});
		const a = await node(() => openStore("order"), consumer("a"));
		await node(() => openStore("order"), consumer("b"));
		const keys = Array.from({ length: 16 }, (_, i) => `account-${i}`);
		const perKey = 15;
		await Promise.all(
			keys.map(async key => {
				for (let seq = 0; seq < perKey; seq++) await a.sendToChannel("ledger.entries", { key, seq }, { key });
			})
		);
		await expect.poll(() => handled.length, { timeout: 20_000, interval: 100 }).toBe(keys.length * perKey);
		for (const key of keys)
			expect(
				handled.filter(h => h.key === key).map(h => h.seq),
				key
			).toEqual(Array.from({ length: perKey }, (_, i) => i));
		const byNode = { a: handled.filter(h => h.node === "a").length, b: handled.filter(h => h.node === "b").length };
		console.log(`${kind}: per-key order held for ${keys.length} keys × ${perKey}; node a handled ${byNode.a}, node b handled ${byNode.b}`);
		expect(byNode.a).toBeGreaterThan(0);
		expect(byNode.b).toBeGreaterThan(0);
	});
});
