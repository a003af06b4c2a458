import type { JetStreamManager, StreamConfig } from "nats";
import { describe, expect, it } from "vitest";
import type { MirrorWatchdogEvent } from "../../../../regions/directory/mirror-watchdog.ts";
import { MirrorWatchdog } from "../../../../regions/directory/mirror-watchdog.ts";

/** Stream sequences as the servers would report them; the real servers' behaviour is in test/multi-region/mirror-watchdog.spec.ts. */
function streams(seqs: { origin: number; mirror: number; originUp?: boolean }) {
	const config = { name: "KV_b-ap", mirror: { name: "KV_b" } } as StreamConfig;
	const jsm = {
		streams: {
			info: async (name: string) => {
				if (name === "KV_b" && seqs.originUp === false) throw new Error("timeout");
				return { config, state: { last_seq: name === "KV_b" ? seqs.origin : seqs.mirror } };
			},
			delete: async () => true,
			add: async () => ({ config })
		}
	} as unknown as JetStreamManager;
	return jsm;
}

/** A watchdog over `seqs` that repairs after 1 s standing still, at most once a minute. */
function watchdog(seqs: { origin: number; mirror: number; originUp?: boolean }, events: MirrorWatchdogEvent[]): MirrorWatchdog {
	return new MirrorWatchdog({
		jsm: streams(seqs),
		mirror: "KV_b-ap",
		origin: "KV_b",
		stallMs: 1000,
		minRepairIntervalMs: 60_000,
		onEvent: e => events.push(e)
	});
}

describe("mirror watchdog", () => {
	it("says when a stalled mirror it may not repair yet moves again, so that reads can return to it", async () => {
		const seqs = { origin: 10, mirror: 5 };
		const seen: MirrorWatchdogEvent[] = [];
		const events = () => seen.map(e => e.type);
		const dog = watchdog(seqs, seen);
		expect(await dog.check(0)).toBe("behind");
		expect(await dog.check(1500)).toBe("repairing");
		// Repaired and refilled to 10, then stalled again at 10 while the origin went on: no second repair within the minute.
		seqs.mirror = 10;
		seqs.origin = 12;
		expect(await dog.check(2000)).toBe("behind");
		expect(await dog.check(3500)).toBe("stalled");
		expect(events()).toEqual(["stalled", "repairing", "repaired", "stalled"]);
		seqs.mirror = 11;
		expect(await dog.check(4000)).toBe("behind");
		expect(events().at(-1)).toBe("resumed");
		expect(dog.repairs).toBe(1);
	});

	it("gives a stalled mirror back to its readers once the origin stops answering: it is then the only source", async () => {
		const seqs = { origin: 10, mirror: 5, originUp: true };
		const events: MirrorWatchdogEvent[] = [];
		const dog = watchdog(seqs, events);
		await dog.check(0);
		await dog.check(1500);
		// Refilled, then stalled again: the repair a moment ago holds the next one back.
		seqs.mirror = 10;
		seqs.origin = 12;
		await dog.check(2000);
		expect(await dog.check(3500)).toBe("stalled");
		seqs.originUp = false;
		expect(await dog.check(2000)).toBe("origin-unreachable");
		expect(events.at(-1)).toEqual({ type: "resumed", reason: "origin-unreachable" });
	});
});
