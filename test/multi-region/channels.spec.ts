import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { ServiceSchema } from "moleculer";
import { connect } from "nats";
import { afterAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../app/node.ts";
import { startRegionNode } from "../../app/node.ts";
import type { ChannelDelivery } from "../../mixins/channels/index.ts";
import { openSqliteDirectory } from "../../regions/directory/sqlite-store.ts";
import { loadRegions } from "../../regions/loader.ts";
import { deleteChannelStreams } from "../harness/channels-streams.ts";
import { launcherEnv, REAL, runId } from "../harness/real-servers.ts";

const run = runId();
const env = launcherEnv(run, { EDGEHOME_MOVE_PARTICIPANTS: "" });
/** The restart tests' regions, in namespaces of their own (`t<run>r-<region>`): no node of the first test sees them. */
const restartEnv = launcherEnv(`${run}r`, { EDGEHOME_MOVE_PARTICIPANTS: "" });
const directoryStore = openSqliteDirectory(":memory:");
const directory = { store: directoryStore, blindIndexKey: randomBytes(32) };
const nodes: RegionNode[] = [];

afterAll(async () => {
	for (const node of nodes) await node.stop();
	await directoryStore.close();
	await deleteChannelStreams(`t${run}`);
	await deleteChannelStreams(`t${run}r`);
});

async function start(regionId: string, schemas: ServiceSchema[] = [], nodeEnv = env): Promise<RegionNode> {
	const node = await startRegionNode({
		region: loadRegions().find(r => r.id === regionId)!,
		transport: "nats",
		services: [],
		schemas,
		stores: { sql: "sqlite::memory:", keyPrefix: `channels-${regionId}:` },
		directory,
		env: nodeEnv,
		overrides: { logger: false }
	});
	nodes.push(node);
	return node;
}

interface Row {
	channel: string;
	group: string;
	pending: number;
}
const outboxPending = async (node: RegionNode) =>
	(await node.broker.call<{ channels: Row[] }, unknown>("$channels.list", {})).channels.find(r => r.channel === "OUTBOX-cn-east" && r.group === "forwarder")
		?.pending;

/** The JetStream streams of a region's namespace on the shared server. */
async function streamsOf(namespace: string): Promise<string[]> {
	const nc = await connect({ servers: REAL.nats });
	try {
		const names: string[] = [];
		for await (const name of (await nc.jetstreamManager()).streams.names()) if (name.includes(`_${namespace}_`)) names.push(name);
		return names.sort();
	} finally {
		await nc.close();
	}
}

describe("a channel in another region", () => {
	it("waits in the sender's outbox while that region is unreachable, then arrives once each, in key order", async () => {
		const eu = await start("eu-central");
		const keys = ["ann", "bob", "cy"];
		const perKey = 10;
		const sent: string[] = [];
		for (let seq = 0; seq < perKey; seq++)
			for (const key of keys) {
				const result = await eu.broker.sendToChannel("greetings.sent", { key, seq }, { key, region: "cn-east" });
				expect(result).toMatchObject({ region: "cn-east", outbox: true });
				sent.push(result.id);
			}
		// No node of cn-east runs: the forwarder keeps failing, the messages stay stored in eu-central.
		await sleep(2500);
		expect(await outboxPending(eu)).toBe(sent.length);

		const handled: { id: string; key: string; seq: number; region: string }[] = [];
		const cn = await start("cn-east", [
			{
				name: "greeter",
				channels: {
					"greetings.sent": {
						handler(msg: ChannelDelivery<{ key: string; seq: number }>) {
							handled.push({ id: msg.id, key: msg.payload.key, seq: msg.payload.seq, region: String(this.broker.metadata.region) });
						}
					}
				}
			}
		]);
		await expect.poll(() => handled.length, { timeout: 20_000, interval: 100 }).toBe(sent.length);
		expect(handled.map(h => h.id).sort()).toEqual([...sent].sort());
		for (const key of keys) expect(handled.filter(h => h.key === key).map(h => h.seq)).toEqual(Array.from({ length: perKey }, (_, i) => i));
		expect(new Set(handled.map(h => h.region))).toEqual(new Set(["cn-east"]));
		await expect.poll(() => outboxPending(eu), { timeout: 5000 }).toBe(0);

		// A forwarder that crashed after the target stored a message but before its outbox heard back sends it again: stored once.
		const again = { channel: "greetings.sent", id: sent[0]!, key: "ann", headers: {}, payload: JSON.stringify({ key: "ann", seq: 0 }) };
		expect(await cn.broker.call("$channels.accept", again)).toEqual({ duplicate: true });
		await sleep(500);
		expect(handled).toHaveLength(sent.length);
		console.log(
			`cross-region: ${sent.length} messages held in eu-central's outbox while cn-east was down; ${handled.length} handled in cn-east, 0 lost, 0 twice`
		);
	});
});

describe("a region's outboxes", () => {
	it("are made by the first message for another region: a node that sends none leaves no stream", async () => {
		const node = await start("ap-south", [], restartEnv);
		// The start's look for outboxes to resume runs after broker.start: give it time to (wrongly) make one.
		await sleep(1000);
		expect(await streamsOf(`t${run}r-ap-south`)).toEqual([]);
		await node.stop();
		nodes.splice(nodes.indexOf(node), 1);
	});

	it("are forwarded after the sending node restarts, without a new message", async () => {
		const first = await start("eu-central", [], restartEnv);
		const sent: string[] = [];
		for (let seq = 0; seq < 6; seq++) sent.push((await first.broker.sendToChannel("parcels.sent", { seq }, { key: "one", region: "cn-east" })).id);
		await expect.poll(() => outboxPending(first), { timeout: 5000 }).toBe(sent.length);
		await first.stop();
		nodes.splice(nodes.indexOf(first), 1);

		const handled: { id: string; seq: number }[] = [];
		await start(
			"cn-east",
			[
				{
					name: "parcels",
					channels: {
						"parcels.sent": {
							handler(msg: ChannelDelivery<{ seq: number }>) {
								handled.push({ id: msg.id, seq: msg.payload.seq });
							}
						}
					}
				}
			],
			restartEnv
		);
		await sleep(1000);
		expect(handled).toEqual([]);
		const again = await start("eu-central", [], restartEnv);
		// Within a second, unless the stopped node had pulled a message it never handled: that one comes back after the forwarder's ack wait (10 s).
		await expect.poll(() => handled.length, { timeout: 20_000, interval: 100 }).toBe(sent.length);
		expect(handled).toEqual(sent.map((id, seq) => ({ id, seq })));
		await expect.poll(() => outboxPending(again), { timeout: 5000 }).toBe(0);
		// The receiving region sent nothing away: it has its channel's stream and no outbox.
		expect(await streamsOf(`t${run}r-cn-east`)).toEqual([`CH_t${run}r-cn-east_parcels_sent`]);
	}, 90_000);
});
