import type { JetStreamManager, NatsConnection } from "nats";
import { connect, StorageType, StringCodec } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MirrorWatchdogEvent } from "../../../../regions/directory/mirror-watchdog.ts";
import { MirrorWatchdog } from "../../../../regions/directory/mirror-watchdog.ts";
import { REAL, runId } from "../../../harness/real-servers.ts";
import { within } from "../../../harness/waiting.ts";

const sc = StringCodec();

/**
 * A mirror holding messages its origin does not, on the real NATS: the origin is made anew under the
 * mirror with other messages, which leaves the mirror as a partition left a cut-off region's one on
 * nats-server 2.9 (its last sequence ahead of the origin's, its messages not the origin's).
 */
describe("mirror watchdog: a mirror that diverged from its origin", () => {
	const run = runId();
	const origin = `WD_ORIGIN_${run}`;
	const mirror = `WD_MIRROR_${run}`;
	const subject = (key: string) => `wd.${run}.${key}`;
	let nc: NatsConnection;
	let jsm: JetStreamManager;

	/** The subjects and payloads a stream holds, in order. */
	async function contents(stream: string): Promise<string[]> {
		const { state } = await jsm.streams.info(stream);
		const out: string[] = [];
		for (let seq = state.first_seq; seq <= state.last_seq && state.messages > 0; seq++) {
			const m = await jsm.streams.getMessage(stream, { seq }).catch(() => undefined);
			if (m) out.push(`${m.subject}=${sc.decode(m.data)}`);
		}
		return out;
	}

	async function makeOrigin(writes: [string, string][]): Promise<void> {
		await jsm.streams.add({ name: origin, subjects: [subject(">")], storage: StorageType.File });
		const js = nc.jetstream();
		for (const [key, value] of writes) await js.publish(subject(key), sc.encode(value));
	}

	beforeAll(async () => {
		nc = await connect({ servers: REAL.nats });
		jsm = await nc.jetstreamManager();
		await makeOrigin([
			["a", "1"],
			["b", "1"],
			["c", "1"]
		]);
		await jsm.streams.add({ name: mirror, mirror: { name: origin }, storage: StorageType.File });
		await within(async () => (await jsm.streams.info(mirror)).state.last_seq === 3, 10_000);
		// The origin loses what the mirror copied: made anew with two other writes.
		await jsm.streams.delete(origin);
		await makeOrigin([
			["a", "2"],
			["d", "2"]
		]);
	});

	afterAll(async () => {
		for (const stream of [mirror, origin]) await jsm?.streams.delete(stream).catch(() => undefined);
		await nc?.close();
	});

	it("is seen at once and made anew from the origin, after which it holds exactly what the origin holds", async () => {
		expect(await contents(mirror)).toEqual([`${subject("a")}=1`, `${subject("b")}=1`, `${subject("c")}=1`]);
		const events: MirrorWatchdogEvent[] = [];
		const dog = new MirrorWatchdog({ jsm, mirror, origin, intervalMs: 100, stallMs: 300, minRepairIntervalMs: 0, onEvent: e => events.push(e) });
		expect(await dog.check()).toBe("diverged");
		expect(events).toEqual([{ type: "diverged", mirrorSeq: 3, originSeq: 2 }]);
		dog.start();
		try {
			await within(() => events.some(e => e.type === "repaired"), 10_000);
		} finally {
			await dog.stop();
		}
		expect(events.map(e => e.type)).toEqual(["diverged", "repairing", "repaired"]);
		expect(await contents(mirror)).toEqual(await contents(origin));
		expect(await contents(origin)).toEqual([`${subject("a")}=2`, `${subject("d")}=2`]);
		expect(await dog.check()).toBe("following");
	});
});
