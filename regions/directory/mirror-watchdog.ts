import type { JetStreamManager, StreamConfig } from "nats";

/**
 * Restarts a JetStream mirror that has stopped following its origin.
 *
 * Why: a mirror whose consumer on the origin could not be set up waits for the server's own
 * retry. On nats-server 2.9.10 that comes within 2–8 s (measured; a 5 s consumer-create timeout), but
 * on 2.10.27 and 2.15.1 a mirror whose server restarted waits 30 s for an answer that never
 * comes, then backs off: measured 32–44 s behind an origin that answered all along. Neither a
 * stream leader stepdown nor a no-op config update restarts it there (measured: no effect), and a
 * clustered server refuses to change a stream's mirror config; deleting and re-adding the mirror
 * with its own config does (following again ~1 s later).
 *
 * Diverged means: the mirror holds a message the origin does not: it is ahead of the origin, or its
 * last message is at another time than the origin's at the same sequence (mirrors keep the origin's
 * times). Seen on nats-server 2.9 after a partition: the mirror of the region cut off had copied
 * writes from the origin's leader there that the other replicas never took, then stood level or
 * ahead with entries that do not exist and without the ones that do. Only a new mirror mends that.
 *
 * Stalled means: the origin answers and is ahead of the mirror, and the mirror's last sequence has
 * not moved for `stallMs`. A mirror that moves, however slowly, is left alone (a new one would be
 * no faster), and so is one whose origin does not answer. `mirror.lag` is not used: the server
 * only updates it when a message arrives, so it can read hundreds while the mirror is level.
 *
 * Cost of a repair: the new mirror starts empty and copies the origin's current messages (one per
 * key with history 1); until it has them, reads from it miss keys. `onEvent` says when a repair
 * starts and when the mirror has reached the origin again, so that a caller can read from the
 * origin meanwhile.
 */

export interface MirrorWatchdogOptions {
	/** The JetStream holding the mirror. */
	jsm: JetStreamManager;
	/** The JetStream holding the origin, when it is another domain's (default `jsm`). */
	originJsm?: JetStreamManager;
	/** The mirror stream, e.g. `KV_<bucket>-<domain>`. */
	mirror: string;
	/** The stream it mirrors, e.g. `KV_<bucket>`. */
	origin: string;
	/** Time between checks (default 2000 ms). */
	intervalMs?: number;
	/** A mirror behind and not moving, or holding what the origin does not, for this long is repaired (default 15000 ms). */
	stallMs?: number;
	/** Least time between two repairs (default 60000 ms), so that a cause a repair cannot fix does not empty the mirror over and over. */
	minRepairIntervalMs?: number;
	onEvent?: (event: MirrorWatchdogEvent) => void;
}

export type MirrorWatchdogEvent =
	| { type: "stalled"; mirrorSeq: number; originSeq: number; stalledMs: number }
	/** The mirror holds what the origin does not (its reads must not be trusted until a repair). */
	| { type: "diverged"; mirrorSeq: number; originSeq: number }
	/** Another node made the mirror anew: it refills from empty, and is `repaired` once it has the origin's `originSeq`. */
	| { type: "remade"; originSeq: number }
	| { type: "repairing"; config: StreamConfig }
	| { type: "repaired"; originSeq: number; ms: number }
	/** A mirror reported stalled is again the best source: it moved before any repair, or its origin stopped answering. */
	| { type: "resumed"; reason: "moving" | "origin-unreachable" }
	| { type: "repair-failed"; error: unknown };

/** A line for the node's log, and whether an operator should look (the mirror is not serving reads as it should). */
export function mirrorEventLine(e: MirrorWatchdogEvent): { warn: boolean; line: string } {
	switch (e.type) {
		case "stalled":
			return { warn: true, line: `directory mirror stalled at ${e.mirrorSeq}, the origin at ${e.originSeq}, for ${e.stalledMs} ms: reads go to the origin` };
		case "diverged":
			return { warn: true, line: `directory mirror diverged from its origin (mirror at ${e.mirrorSeq}, origin at ${e.originSeq}): reads go to the origin` };
		case "repairing":
			return { warn: false, line: "directory mirror being made anew" };
		case "remade":
			return { warn: false, line: `directory mirror made anew by another node: reads go to the origin until it has the origin's ${e.originSeq}` };
		case "repaired":
			return { warn: false, line: `directory mirror made anew, at the origin's ${e.originSeq} after ${e.ms} ms` };
		case "resumed":
			return { warn: false, line: `directory mirror serves reads again (${e.reason})` };
		case "repair-failed":
			return { warn: true, line: `directory mirror repair failed: ${(e.error as Error)?.message ?? String(e.error)}` };
	}
}

/** What one check found. */
export type MirrorState = "following" | "behind" | "stalled" | "diverged" | "repairing" | "origin-unreachable" | "mirror-unreachable";

/** What the watchdog reads of a stream: its last sequence, that message's time and the stream's creation (RFC 3339). */
interface Last {
	seq: number;
	ts: string;
	created: string;
}

const DEFAULTS = { intervalMs: 2000, stallMs: 15_000, minRepairIntervalMs: 60_000 };
/** JetStream's API error code for a stream that does not exist (as while a mirror is deleted and added again). */
export const STREAM_NOT_FOUND = 10059;

export class MirrorWatchdog {
	private readonly opts: MirrorWatchdogOptions & typeof DEFAULTS;
	private timer: ReturnType<typeof setTimeout> | undefined;
	private running: Promise<unknown> | undefined;
	private stopped = true;
	/** The mirror's last sequence, and since when it has been that while behind. */
	private still: { seq: number; since: number } | undefined;
	private lastRepairAt = -Infinity;
	/** Config to re-add, kept until the add succeeds; and the origin sequence the new mirror must reach. */
	private pending: { config: StreamConfig } | undefined;
	private resync: { originSeq: number; startedAt: number } | undefined;
	private repairCount = 0;
	/** A stall or a divergence was reported and the mirror has not moved since (nor been repaired). */
	private stallReported = false;
	/** Since when the mirror has been seen holding what the origin does not. */
	private divergedSince: number | undefined;
	/** When the mirror last seen was created: another time means someone made it anew. */
	private mirrorCreated: string | undefined;

	constructor(opts: MirrorWatchdogOptions) {
		this.opts = { ...DEFAULTS, ...opts };
	}

	/** Repairs done so far. */
	get repairs(): number {
		return this.repairCount;
	}

	start(): void {
		if (!this.stopped) return;
		this.stopped = false;
		const tick = () => {
			this.running = this.check()
				.catch(() => undefined)
				.finally(() => {
					if (!this.stopped) this.timer = setTimeout(tick, this.opts.intervalMs);
				});
		};
		this.timer = setTimeout(tick, this.opts.intervalMs);
	}

	async stop(): Promise<void> {
		this.stopped = true;
		clearTimeout(this.timer);
		await this.running;
	}

	/** One look, repairing when stalled; start() calls it every `intervalMs`. */
	async check(now = Date.now()): Promise<MirrorState> {
		const { jsm, originJsm = jsm, mirror, origin } = this.opts;
		if (this.pending) {
			// A repair deleted the mirror and its re-add has not succeeded yet.
			try {
				await jsm.streams.add(this.pending.config);
			} catch (error) {
				this.emit({ type: "repair-failed", error });
				return "repairing";
			}
			this.pending = undefined;
		}
		// Origin first: a mirror level with the origin as it was a moment before is following.
		let originLast: Last;
		try {
			originLast = await lastOf(originJsm, origin);
		} catch {
			this.still = undefined;
			this.resume("origin-unreachable");
			return "origin-unreachable";
		}
		let mirrorLast: Last;
		try {
			mirrorLast = await lastOf(jsm, mirror);
		} catch {
			return "mirror-unreachable";
		}
		const originSeq = originLast.seq;
		const mirrorSeq = mirrorLast.seq;
		const remade = this.mirrorCreated !== undefined && mirrorLast.created !== this.mirrorCreated;
		this.mirrorCreated = mirrorLast.created;
		if (remade && !this.resync) {
			// Another node's repair: the new mirror moves as it refills, which must not pass for a stalled one resuming.
			this.still = undefined;
			this.divergedSince = undefined;
			this.stallReported = false;
			this.resync = { originSeq, startedAt: now };
			this.emit({ type: "remade", originSeq });
		}
		if (this.resync && mirrorSeq >= this.resync.originSeq) {
			this.emit({ type: "repaired", originSeq: this.resync.originSeq, ms: now - this.resync.startedAt });
			this.resync = undefined;
		}
		if (await this.diverged(mirrorLast, originLast)) {
			this.still = undefined;
			this.divergedSince ??= now;
			if (!this.stallReported) this.emit({ type: "diverged", mirrorSeq, originSeq });
			this.stallReported = true;
			// Reads left the mirror with the event; the repair waits as a stall's does, so that of a region's nodes one makes the new mirror.
			if (now - this.divergedSince < this.opts.stallMs || now - this.lastRepairAt < this.opts.minRepairIntervalMs) return "diverged";
			this.divergedSince = undefined;
			await this.repair(originSeq, now);
			return "repairing";
		}
		this.divergedSince = undefined;
		// A re-added mirror that stalls in turn is caught like any other.
		const moving = this.resync ? "repairing" : "behind";
		if (mirrorSeq >= originSeq) {
			this.still = undefined;
			this.resume("moving");
			return this.resync ? "repairing" : "following";
		}
		if (!this.still || this.still.seq !== mirrorSeq) {
			if (this.still) this.resume("moving");
			this.still = { seq: mirrorSeq, since: now };
			return moving;
		}
		const stalledMs = now - this.still.since;
		if (stalledMs < this.opts.stallMs) return moving;
		this.stallReported = true;
		this.emit({ type: "stalled", mirrorSeq, originSeq, stalledMs });
		if (now - this.lastRepairAt < this.opts.minRepairIntervalMs) return "stalled";
		await this.repair(originSeq, now);
		return "repairing";
	}

	/** Whether the mirror holds a message the origin does not; false when the origin's answers cannot tell. */
	private async diverged(mirrorLast: Last, originLast: Last): Promise<boolean> {
		const { originJsm = this.opts.jsm, origin } = this.opts;
		let at = originLast;
		if (mirrorLast.seq > at.seq) {
			// Copied between the two looks, or never the origin's: only a second look at the origin tells.
			const again = await lastOf(originJsm, origin).catch(() => undefined);
			if (!again) return false;
			at = again;
			if (mirrorLast.seq > at.seq) return true;
		}
		if (mirrorLast.seq === at.seq) return !sameTime(mirrorLast.ts, at.ts);
		if (mirrorLast.seq === 0) return false;
		// Behind: the origin's message at the mirror's last sequence, unless a newer revision of its key removed it.
		const theirs = await originJsm.streams.getMessage(origin, { seq: mirrorLast.seq }).catch(() => undefined);
		return theirs !== undefined && !sameTime(mirrorLast.ts, theirs.timestamp);
	}

	/** Deletes the mirror and adds it again with its own config: a new mirror sets up a new consumer on the origin. */
	private async repair(originSeq: number, now: number): Promise<void> {
		const { jsm, mirror, origin } = this.opts;
		this.lastRepairAt = now;
		this.still = undefined;
		let config: StreamConfig;
		try {
			config = (await jsm.streams.info(mirror)).config;
		} catch (error) {
			this.emit({ type: "repair-failed", error });
			return;
		}
		// Never delete a stream that is not (or no longer) a mirror of this origin.
		if (config.mirror?.name !== origin) {
			this.emit({ type: "repair-failed", error: new Error(`${mirror} is not a mirror of ${origin}`) });
			return;
		}
		this.stallReported = false;
		this.emit({ type: "repairing", config });
		this.repairCount++;
		this.resync = { originSeq, startedAt: now };
		try {
			await jsm.streams.delete(mirror);
		} catch (error) {
			if (apiErrorCode(error) !== STREAM_NOT_FOUND) {
				this.resync = undefined;
				this.emit({ type: "repair-failed", error });
				return;
			}
		}
		this.pending = { config };
		try {
			await jsm.streams.add(config);
			this.pending = undefined;
		} catch (error) {
			this.emit({ type: "repair-failed", error });
		}
	}

	private resume(reason: "moving" | "origin-unreachable"): void {
		if (!this.stallReported) return;
		this.stallReported = false;
		this.emit({ type: "resumed", reason });
	}

	private emit(event: MirrorWatchdogEvent): void {
		try {
			this.opts.onEvent?.(event);
		} catch {
			// A listener's failure is not the watchdog's.
		}
	}
}

async function lastOf(jsm: JetStreamManager, stream: string): Promise<Last> {
	const { state, created } = await jsm.streams.info(stream);
	return { seq: state.last_seq, ts: state.last_ts, created };
}

/** To the millisecond: two servers may write the same instant with different digits. */
function sameTime(a: string, b: string): boolean {
	return Date.parse(a) === Date.parse(b);
}

function apiErrorCode(err: unknown): number | undefined {
	return (err as { api_error?: { err_code?: number } } | undefined)?.api_error?.err_code;
}
