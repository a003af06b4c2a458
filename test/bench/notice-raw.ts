import type { JsMsg } from "nats";
import { AckPolicy, connect, StorageType } from "nats";
import type { Cleanups } from "./measure.ts";
import type { Arrivals, Side } from "./notice-load.ts";

/**
 * bench:notice's baseline (a): what the same NATS does with a message on its own. A file-backed
 * stream of the run's own name (deleted afterwards); each send is a publish that waits for
 * JetStream's ack; one durable pull consumer takes the messages and acks each one explicitly,
 * reporting its arrival. Nothing of the project is on the way.
 */

/** Messages the consumer may hold unacknowledged, and pulls at a time. */
const CONSUMER_PENDING = 1000;
const PULL_BATCH = 100;

export async function rawJetStream(cleanups: Cleanups, servers: string, run: string, arrivals: Arrivals): Promise<Side> {
	const nc = await connect({ servers });
	cleanups.push(() => nc.close());
	const jsm = await nc.jetstreamManager();
	const stream = `BENCH_NOTICE_RAW_${run}`;
	const subject = `bench.notice.raw.${run}`;
	await jsm.streams.add({ name: stream, subjects: [subject], storage: StorageType.File });
	cleanups.push(async () => void (await jsm.streams.delete(stream)));
	await jsm.consumers.add(stream, { durable_name: "consumer", ack_policy: AckPolicy.Explicit, max_ack_pending: CONSUMER_PENDING });
	const js = nc.jetstream();
	const messages = await (await js.consumers.get(stream, "consumer")).consume({ max_messages: PULL_BATCH });
	cleanups.push(async () => void messages.stop());
	void (async () => {
		for await (const m of messages as AsyncIterable<JsMsg>) {
			arrivals.arrived(Number(m.string()), performance.now());
			m.ack();
		}
	})();
	return { send: n => js.publish(subject, String(n)) };
}
