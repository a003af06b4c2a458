import { ServiceBroker } from "moleculer";
import type { JsMsg } from "nats";
import { AckPolicy, connect, StorageType } from "nats";
import type { ChannelDelivery } from "../../mixins/channels/index.ts";
import { openJetStreamChannels } from "../../mixins/channels/index.ts";
import { Channels } from "../../mixins/channels.mixin.ts";
import { deleteChannelStreams } from "../harness/channels-streams.ts";
import { REAL, runId } from "../harness/real-servers.ts";
import { benchDirectoryWrites } from "./directory-writes.ts";
import type { Cleanups, Figures } from "./measure.ts";
import { IN_FLIGHT, round, table, withCleanups } from "./measure.ts";

/**
 * `npm run bench:channels`: a message stored in JetStream and handled by a consumer, raw
 * (nats.js publish-with-ack, one pull consumer acking) against the channels mixin
 * (`sendToChannel` → a service's channel handler) on the same server. Each side sends
 * MESSAGES per round, IN_FLIGHT sends at a time, while its consumer handles them; rounds
 * alternate so machine noise weighs on both alike. Throughput is messages handled per second
 * from the first send to the last handled; latency is from a send's start to its handler.
 * Then the directory writes of a registration in the region-autonomy topology against the former
 * single-primary layout (directory-writes.ts), so the price of the directory's durability shows.
 * Ends with one JSON line.
 */

const MESSAGES = Number(process.env.BENCH_CHANNEL_MESSAGES ?? 10_000);
const ROUNDS = Number(process.env.BENCH_CHANNEL_ROUNDS ?? 3);
const WARMUP_MESSAGES = 2000;
/** Both consumers take up to this many messages at a time. */
const CONSUMER_IN_FLIGHT = 100;
const GOAL = 0.7;
const REGISTRATIONS = Number(process.env.BENCH_REGISTRATIONS ?? 300);

interface Side {
	send(i: number): Promise<unknown>;
	/** Publish-to-handled times (ms) seen since the last call, and how many. */
	drain(): number[];
}

async function runRound(side: Side, count: number): Promise<{ perSec: number; latencies: number[] }> {
	side.drain();
	const started = performance.now();
	let next = 0;
	await Promise.all(
		Array.from({ length: IN_FLIGHT }, async () => {
			while (next < count) await side.send(next++);
		})
	);
	const seen: number[] = [];
	const deadline = Date.now() + 60_000;
	while (seen.length < count) {
		if (Date.now() > deadline) throw new Error(`only ${seen.length} of ${count} messages were handled within 60 s`);
		seen.push(...side.drain());
		if (seen.length < count) await new Promise(r => setTimeout(r, 2));
	}
	return { perSec: count / ((performance.now() - started) / 1000), latencies: seen };
}

async function rawSide(cleanups: Cleanups, id: string): Promise<Side> {
	const nc = await connect({ servers: REAL.nats });
	cleanups.push(() => nc.close());
	const jsm = await nc.jetstreamManager();
	const stream = `BENCHRAW_${id}`;
	await jsm.streams.add({ name: stream, subjects: [`benchraw.${id}`], storage: StorageType.File });
	cleanups.push(async () => void (await jsm.streams.delete(stream)));
	await jsm.consumers.add(stream, { durable_name: "raw", ack_policy: AckPolicy.Explicit, max_ack_pending: 10_000 });
	const js = nc.jetstream();
	const feed = await (await js.consumers.get(stream, "raw")).consume({ max_messages: CONSUMER_IN_FLIGHT });
	cleanups.push(async () => void feed.stop());
	let latencies: number[] = [];
	void (async () => {
		for await (const m of feed as AsyncIterable<JsMsg>) {
			const { t } = JSON.parse(m.string()) as { t: number };
			latencies.push(performance.now() - t);
			m.ack();
		}
	})();
	return {
		send: i => js.publish(`benchraw.${id}`, JSON.stringify({ i, t: performance.now() })),
		drain() {
			const out = latencies;
			latencies = [];
			return out;
		}
	};
}

async function mixinSide(cleanups: Cleanups, id: string): Promise<Side> {
	const store = await openJetStreamChannels({ servers: REAL.nats, namespace: `bench${id}` });
	cleanups.push(() => store.close());
	cleanups.push(() => deleteChannelStreams(`bench${id}`));
	let latencies: number[] = [];
	const broker = new ServiceBroker({ logger: false, metrics: false, middlewares: [Channels({ store })] });
	broker.createService({
		name: "bench",
		channels: {
			"bench.work": {
				maxInFlight: CONSUMER_IN_FLIGHT,
				handler(msg: ChannelDelivery<{ t: number }>) {
					latencies.push(performance.now() - msg.payload.t);
				}
			}
		}
	});
	await broker.start();
	cleanups.push(() => broker.stop());
	return {
		send: i => broker.sendToChannel("bench.work", { i, t: performance.now() }),
		drain() {
			const out = latencies;
			latencies = [];
			return out;
		}
	};
}

function percentile(sorted: number[], p: number): number {
	return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function figures(rates: number[], latencies: number[]): Figures {
	const sorted = [...latencies].sort((a, b) => a - b);
	return { callsPerSec: rates.reduce((a, b) => a + b, 0) / rates.length, p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99) };
}

async function benchChannels(): Promise<{ raw: Figures; mixin: Figures }> {
	return withCleanups(async cleanups => {
		const id = runId();
		const raw = await rawSide(cleanups, id);
		const mixin = await mixinSide(cleanups, id);
		await runRound(raw, WARMUP_MESSAGES);
		await runRound(mixin, WARMUP_MESSAGES);
		const results = { raw: { rates: [] as number[], latencies: [] as number[] }, mixin: { rates: [] as number[], latencies: [] as number[] } };
		for (let r = 0; r < ROUNDS; r++)
			for (const [name, side] of [
				["raw", raw],
				["mixin", mixin]
			] as const) {
				const { perSec, latencies } = await runRound(side, MESSAGES);
				results[name].rates.push(perSec);
				results[name].latencies.push(...latencies);
			}
		return { raw: figures(results.raw.rates, results.raw.latencies), mixin: figures(results.mixin.rates, results.mixin.latencies) };
	});
}

async function main(): Promise<void> {
	console.log(
		`channels: ${ROUNDS} rounds of ${MESSAGES} messages per side, ${IN_FLIGHT} sends in flight, consumers taking ${CONSUMER_IN_FLIGHT} at a time, on ${REAL.nats}\n`
	);
	const { raw, mixin } = await benchChannels();
	const ratio = mixin.callsPerSec / raw.callsPerSec;
	console.log(table({ "raw JetStream (publish → pull, ack)": raw, "channels mixin (sendToChannel → handler)": mixin }).replace("calls/s", "msgs/s"));
	console.log(
		`\nmixin/raw throughput x${ratio.toFixed(3)} (goal ≥ ${GOAL}: ${ratio >= GOAL ? "met" : "NOT met"}); p50 x${(mixin.p50Ms / raw.p50Ms).toFixed(2)}\n`
	);
	console.log(`directory writes of a registration (2 creates) from ap-south, ${REGISTRATIONS} sequential, ${ROUNDS} alternating rounds per layout:`);
	const directory = await withCleanups(cleanups => benchDirectoryWrites(cleanups, REGISTRATIONS, ROUNDS));
	for (const [name, f] of [
		["single primary (origin R1 in cn-east, gateways)", directory.singlePrimary],
		["hub (origin R3, edge as leaf node)", directory.hub]
	] as const)
		console.log(`  ${name.padEnd(48)} ${f.registrationsPerSec.toFixed(1).padStart(8)} reg/s  p50 ${f.p50Ms.toFixed(3)} ms  p99 ${f.p99Ms.toFixed(3)} ms`);
	const price = directory.hub.p50Ms / directory.singlePrimary.p50Ms;
	console.log(
		`  hub/single-primary p50 x${price.toFixed(2)}, p99 x${(directory.hub.p99Ms / directory.singlePrimary.p99Ms).toFixed(2)} (loopback: the extra replication hop only, no WAN latency)\n`
	);
	const out = (f: Figures) => ({ msgsPerSec: Math.round(f.callsPerSec), p50Ms: round(f.p50Ms, 3), p99Ms: round(f.p99Ms, 3) });
	console.log(
		JSON.stringify({
			channels: { raw: out(raw), mixin: out(mixin), throughputRatio: round(ratio, 4), goal: GOAL, met: ratio >= GOAL },
			directoryWrites: { ...directory, p50Ratio: round(price, 3) }
		})
	);
}

main().catch(err => {
	console.error(err);
	process.exitCode = 1;
});
