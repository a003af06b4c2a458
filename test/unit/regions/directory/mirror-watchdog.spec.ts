import type { JetStreamManager, StreamConfig } from "nats";
import { describe, expect, it } from "vitest";
import type { MirrorWatchdogEvent } from "../../../../regions/directory/mirror-watchdog.ts";
import { MirrorWatchdog, mirrorEventLine } from "../../../../regions/directory/mirror-watchdog.ts";

interface Seqs {
	origin: number;
	mirror: number;
	originUp?: boolean;
	/** The mirror's messages after this sequence are not the origin's (copied from a leader that lost them). */
	forkedAfter?: number;
	/** Called at each look at the origin (a write landing between two looks). */
	onOriginLook?: () => void;
	/** When the mirror was created: another node's repair changes it. */
	mirrorCreated?: string;
}

/** A message's time, as the servers report it: the mirror keeps the origin's, except past a fork. */
const timeOf = (seq: number, forked = false) => new Date(seq * 1000 + (forked ? 500 : 0)).toISOString();

/** Stream sequences and times as the servers would report them; the real servers' behaviour is in test/multi-region/mirror-watchdog.spec.ts. */
function streams(seqs: Seqs) {
	const config = { name: "KV_b-ap", mirror: { name: "KV_b" } } as StreamConfig;
	const mirrorTime = (seq: number) => timeOf(seq, seqs.forkedAfter !== undefined && seq > seqs.forkedAfter);
	const jsm = {
		streams: {
			info: async (name: string) => {
				if (name === "KV_b") {
					if (seqs.originUp === false) throw new Error("timeout");
					seqs.onOriginLook?.();
					return { config, state: { last_seq: seqs.origin, last_ts: timeOf(seqs.origin) } };
				}
				return { config, created: seqs.mirrorCreated ?? "2026-12-01T00:00:00Z", state: { last_seq: seqs.mirror, last_ts: mirrorTime(seqs.mirror) } };
			},
			getMessage: async (name: string, { seq }: { seq: number }) => {
				if (name !== "KV_b" || seq > seqs.origin) throw new Error("no message found");
				return { seq, timestamp: timeOf(seq) };
			},
			delete: async () => true,
			add: async () => ({ config })
		}
	} as unknown as JetStreamManager;
	return jsm;
}

/** A watchdog over `seqs` that repairs after 1 s standing still (or diverged), at most once a minute. */
function watchdog(seqs: Seqs, events: MirrorWatchdogEvent[]): MirrorWatchdog {
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

	it("takes the reads off a mirror ahead of its origin at once, and makes it anew once that has lasted as long as a stall", async () => {
		// After a partition: the mirror copied seq 9 and 10 from a leader that lost them; the origin's seq 9 is another write.
		const seqs: Seqs = { origin: 9, mirror: 10, forkedAfter: 8 };
		const events: MirrorWatchdogEvent[] = [];
		const dog = watchdog(seqs, events);
		expect(await dog.check(0)).toBe("diverged");
		expect(events).toEqual([{ type: "diverged", mirrorSeq: 10, originSeq: 9 }]);
		expect(await dog.check(500)).toBe("diverged");
		expect(await dog.check(1000)).toBe("repairing");
		// The new mirror copies the origin.
		seqs.mirror = 9;
		seqs.forkedAfter = undefined;
		expect(await dog.check(1500)).toBe("following");
		expect(events.map(e => e.type)).toEqual(["diverged", "repairing", "repaired"]);
		// What the launcher logs: a warning an operator can act on, then the repair.
		expect(events.map(mirrorEventLine)).toEqual([
			{ warn: true, line: "directory mirror diverged from its origin (mirror at 10, origin at 9): reads go to the origin" },
			{ warn: false, line: "directory mirror being made anew" },
			{ warn: false, line: "directory mirror made anew, at the origin's 9 after 500 ms" }
		]);
	});

	it("sees a mirror that diverged while level with its origin, or behind it, by the times of the same sequence", async () => {
		const level: MirrorWatchdogEvent[] = [];
		expect(await watchdog({ origin: 10, mirror: 10, forkedAfter: 8 }, level).check(0)).toBe("diverged");
		const behind: MirrorWatchdogEvent[] = [];
		expect(await watchdog({ origin: 12, mirror: 10, forkedAfter: 8 }, behind).check(0)).toBe("diverged");
		// Behind at the origin's own message: catching up, not diverged.
		expect(await watchdog({ origin: 12, mirror: 10 }, []).check(0)).toBe("behind");
		expect([level, behind]).toEqual([[{ type: "diverged", mirrorSeq: 10, originSeq: 10 }], [{ type: "diverged", mirrorSeq: 10, originSeq: 12 }]]);
	});

	it("leaves alone a mirror ahead only of the origin's first look: it copied a write that landed in between", async () => {
		let looks = 0;
		const seqs: Seqs = { origin: 9, mirror: 10 };
		seqs.onOriginLook = () => {
			if (++looks === 2) seqs.origin = 10;
		};
		const events: MirrorWatchdogEvent[] = [];
		expect(await watchdog(seqs, events).check(0)).toBe("following");
		// Nor when the origin stops answering between the two looks: it cannot tell.
		const gone: Seqs = { origin: 9, mirror: 10 };
		gone.onOriginLook = () => {
			gone.originUp = false;
		};
		expect(await watchdog(gone, events).check(0)).toBe("following");
		expect(events).toEqual([]);
	});

	it("keeps the reads off a mirror another node made anew until it has refilled: it moves, but is no stalled mirror resuming", async () => {
		const seqs: Seqs = { origin: 10, mirror: 10 };
		const events: MirrorWatchdogEvent[] = [];
		const dog = watchdog(seqs, events);
		expect(await dog.check(0)).toBe("following");
		// Another node of the region deleted and re-added it: it refills from empty.
		seqs.mirror = 3;
		seqs.mirrorCreated = "2026-12-02T08:30:00Z";
		expect(await dog.check(100)).toBe("repairing");
		seqs.mirror = 7;
		expect(await dog.check(200)).toBe("repairing");
		expect(events).toEqual([{ type: "remade", originSeq: 10 }]);
		seqs.mirror = 10;
		expect(await dog.check(300)).toBe("following");
		expect(events.map(e => e.type)).toEqual(["remade", "repaired"]);
		expect(dog.repairs).toBe(0);
	});

	it("leaves a diverged mirror another node made anew to that node's repair, and keeps the reads off it until it has refilled", async () => {
		const seqs: Seqs = { origin: 9, mirror: 10, forkedAfter: 8 };
		const events: MirrorWatchdogEvent[] = [];
		const dog = watchdog(seqs, events);
		expect(await dog.check(0)).toBe("diverged");
		seqs.mirror = 2;
		seqs.forkedAfter = undefined;
		seqs.mirrorCreated = "2026-12-02T08:30:00Z";
		expect(await dog.check(500)).toBe("repairing");
		seqs.mirror = 5;
		expect(await dog.check(1500)).toBe("repairing");
		seqs.mirror = 9;
		expect(await dog.check(2000)).toBe("following");
		expect(events.map(e => e.type)).toEqual(["diverged", "remade", "repaired"]);
		expect(dog.repairs).toBe(0);
	});
});
