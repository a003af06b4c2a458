import { execFileSync } from "node:child_process";
import type { JetStreamClient, JetStreamManager, KV, NatsConnection } from "nats";
import { connect } from "nats";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { MirrorState, MirrorWatchdogEvent } from "../../regions/directory/mirror-watchdog.ts";
import { MirrorWatchdog } from "../../regions/directory/mirror-watchdog.ts";
import type { EdgeTopology } from "../harness/edge-topology.ts";
import { HUB_DOMAIN, startEdgeTopology } from "../harness/edge-topology.ts";
import { lagLink, linkRelays, stallMirror } from "../harness/mirror-lag.ts";
import { runId } from "../harness/real-servers.ts";

const MIRROR = "ap-south";
const REGIONS = ["cn-east", MIRROR, "eu-central"];
/** More keys than a held mirror falls behind by, so that the server never skips it ahead (see mirror-lag.ts). */
const KEYS = 2000;
const RATE = 100;
const CHECK_MS = 500;
const STALL_MS = 3000;
const SERVER = process.env.EDGEHOME_TEST_NATS_SERVER ?? "nats-server";
const VERSION = execFileSync(SERVER, ["--version"]).toString().trim();

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

/** Polls until `check` holds; resolves with how long that took, or rejects after `ms`. */
async function within(check: () => Promise<boolean>, ms: number, what: string): Promise<number> {
	const started = Date.now();
	for (;;) {
		if (await check().catch(() => false)) return Date.now() - started;
		if (Date.now() - started > ms) throw new Error(`${what}: not within ${ms} ms`);
		await sleep(100);
	}
}

describe(`mirror watchdog on real hub and edge servers (${VERSION})`, () => {
	const bucket = `wd-${runId()}`;
	const origin = `KV_${bucket}`;
	const mirror = `KV_${bucket}-${MIRROR}`;
	const relays = linkRelays([MIRROR]);
	let cluster: EdgeTopology;
	let writerNc: NatsConnection;
	let mirrorNc: NatsConnection;
	let kv: KV;
	let js: JetStreamClient;
	/** The watchdog's view: a client of the mirror region's edge server, as a node there would be; its own JetStream and the hub's. */
	let jsm: JetStreamManager;
	let hubJsm: JetStreamManager;
	let watchdog: MirrorWatchdog | undefined;
	const events: (MirrorWatchdogEvent & { at: number })[] = [];

	beforeAll(async () => {
		cluster = await startEdgeTopology(REGIONS, { linkFront: relays });
		writerNc = await connect({ servers: cluster.urls["cn-east"]!, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
		mirrorNc = await connect({ servers: cluster.urls[MIRROR]!, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
		js = writerNc.jetstream({ timeout: 2000, domain: HUB_DOMAIN });
		jsm = await mirrorNc.jetstreamManager({ timeout: 2000 });
		hubJsm = await mirrorNc.jetstreamManager({ timeout: 2000, domain: HUB_DOMAIN });
		// The hub's meta leader may still be settling: retry the creates briefly.
		await within(
			async () => {
				kv = await js.views.kv(bucket, { history: 1, replicas: cluster.placement(MIRROR).originReplicas });
				const external = { api: `$JS.${HUB_DOMAIN}.API`, deliver: "" };
				await mirrorNc.jetstream().views.kv(`${bucket}-${MIRROR}`, { history: 1, mirror: { name: bucket, external } });
				return true;
			},
			15_000,
			"create the buckets"
		);
	});

	afterEach(async () => {
		await watchdog?.stop();
		watchdog = undefined;
		events.length = 0;
	});

	afterAll(async () => {
		try {
			await Promise.allSettled([writerNc?.close(), mirrorNc?.close()]);
		} finally {
			await cluster?.stop();
		}
	});

	function startWatchdog(autoStart = true): MirrorWatchdog {
		watchdog = new MirrorWatchdog({
			jsm,
			originJsm: hubJsm,
			mirror,
			origin,
			intervalMs: CHECK_MS,
			stallMs: STALL_MS,
			onEvent: e => events.push({ ...e, at: Date.now() })
		});
		if (autoStart) watchdog.start();
		return watchdog;
	}

	/** Puts RATE writes a second over KEYS keys until stopped; resolves with how many were acknowledged. */
	function write(): { stop(): Promise<number> } {
		let writing = true;
		let acked = 0;
		let i = 0;
		const loop = (async () => {
			while (writing) {
				const batch = Array.from({ length: RATE / 10 }, () => kv.put(`k.${i++ % KEYS}`, new TextEncoder().encode(String(i))));
				acked += (await Promise.allSettled(batch)).filter(r => r.status === "fulfilled").length;
				await sleep(100);
			}
		})();
		return {
			async stop() {
				writing = false;
				await loop;
				return acked;
			}
		};
	}

	const managerOf = (stream: string) => (stream === origin ? hubJsm : jsm);

	async function lastSeq(stream: string): Promise<number> {
		return (await managerOf(stream).streams.info(stream)).state.last_seq;
	}

	/** The latest sequence of every key a stream holds, read through an ordered consumer. */
	async function latest(stream: string): Promise<Map<string, number>> {
		const { state } = await managerOf(stream).streams.info(stream);
		const seqs = new Map<string, number>();
		if (state.messages === 0) return seqs;
		const consumer = await mirrorNc.jetstream(stream === origin ? { domain: HUB_DOMAIN } : {}).consumers.get(stream);
		while (seqs.size < state.messages) {
			const batch = await consumer.fetch({ max_messages: 500, expires: 2000 });
			let got = 0;
			for await (const m of batch) {
				got++;
				seqs.set(m.subject, m.seq);
				if (m.info.pending === 0) break;
			}
			if (got === 0) break;
		}
		return seqs;
	}

	async function expectSameKeys(): Promise<void> {
		const [o, m] = await Promise.all([latest(origin), latest(mirror)]);
		expect(m.size).toBe(o.size);
		expect([...m].filter(([k, seq]) => o.get(k) !== seq)).toEqual([]);
	}

	/** Follows again: the mirror has reached what the origin held when asked. */
	async function caughtUp(): Promise<boolean> {
		const target = await lastSeq(origin);
		return (await lastSeq(mirror)) >= target;
	}

	it("repairs a mirror whose deliveries stop while its origin answers, and it follows again once they flow", async () => {
		const writes = write();
		await sleep(1000);
		const dog = startWatchdog();
		const lag = stallMirror(relays, MIRROR);
		const heldAt = Date.now();
		const detectedMs = await within(async () => events.some(e => e.type === "stalled"), STALL_MS + 4 * CHECK_MS + 2000, "stall seen");
		await within(async () => dog.repairs > 0, 2000, "repair started");
		const behindWhileHeld = (await lastSeq(origin)) - (await lastSeq(mirror));
		const held = lag.held();
		await sleep(Math.max(0, 6000 - (Date.now() - heldAt)));
		await lag.resume();
		const followMs = await within(caughtUp, 10_000, "mirror following again");
		const acked = await writes.stop();
		await within(caughtUp, 10_000, "mirror level after the last write");
		await expectSameKeys();
		const repaired = events.find(e => e.type === "repaired");
		console.log(
			`[${VERSION}] mirror deliveries held ${Date.now() - heldAt} ms at ${RATE} writes/s: watchdog saw the stall ${detectedMs} ms in ` +
				`(stallMs ${STALL_MS}, checks every ${CHECK_MS} ms), repairs ${dog.repairs}; while held: ${held} frames held, mirror ${behindWhileHeld} behind; ` +
				`after resume following again in ${followMs} ms` +
				(repaired?.type === "repaired" ? `, re-added mirror reached the origin ${repaired.ms} ms after the repair` : "") +
				`; ${acked} writes acknowledged, every key's latest revision equal in the mirror`
		);
		expect(detectedMs).toBeLessThan(STALL_MS + 4 * CHECK_MS + 2000);
		expect(dog.repairs).toBe(1);
		expect(followMs).toBeLessThan(10_000);
	}, 45_000);

	it("leaves the mirror alone while the link into its region is cut, since the origin does not answer there", async () => {
		const writes = write();
		await sleep(1000);
		// Checked by hand, to record every state it saw.
		const dog = startWatchdog(false);
		const states: MirrorState[] = [];
		const cut = lagLink(relays, MIRROR, { scope: "all" });
		const until = Date.now() + STALL_MS + 3000;
		while (Date.now() < until) {
			states.push(await dog.check());
			await sleep(CHECK_MS);
		}
		await dog.stop();
		await cut.resume();
		const followMs = await within(caughtUp, 15_000, "mirror following again");
		await writes.stop();
		await within(caughtUp, 10_000, "mirror level after the last write");
		await expectSameKeys();
		const counts = Object.entries(Object.groupBy(states, s => s)).map(([s, l]) => `${s} ${l!.length}`);
		console.log(
			`[${VERSION}] link into ${MIRROR} cut ${STALL_MS + 3000} ms: checks ${counts.join(", ")}; repairs ${dog.repairs}; following again ${followMs} ms after the link came back`
		);
		expect(dog.repairs).toBe(0);
		expect(states).toContain("origin-unreachable");
	}, 45_000);

	it("has a mirror whose server restarted under writes following again within a bound", async () => {
		const writes = write();
		await sleep(1000);
		const dog = startWatchdog();
		await cluster.killEdge(MIRROR);
		await sleep(500);
		await cluster.restartEdge(MIRROR);
		const bound = STALL_MS + 10_000;
		const followMs = await within(caughtUp, bound, "mirror following again");
		const acked = await writes.stop();
		await within(caughtUp, 10_000, "mirror level after the last write");
		await expectSameKeys();
		console.log(
			`[${VERSION}] mirror's server SIGKILLed and restarted under ${RATE} writes/s: following again ${followMs} ms after the server was ready ` +
				`(bound ${bound} ms), watchdog repairs ${dog.repairs}; ${acked} writes acknowledged, every key's latest revision equal in the mirror`
		);
		expect(followMs).toBeLessThan(bound);
	}, 60_000);
});
