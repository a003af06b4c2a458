import type { LoadFigures, LoadWindow } from "./money-load.ts";
import { figuresOf } from "./money-load.ts";

/**
 * bench:notice's load, the same for the baseline and sv-notice: message `n` is sent (a publish, or
 * a send call) with `inFlight` sends at a time for a window, and arrives at the far end (the raw
 * consumer, or the user's live stream), which reports it by its number. A window's rate is the
 * messages that arrived over the time from its first send to its last arrival; a message's
 * latency is from its send's start to its arrival. A message arriving twice is counted, not hidden.
 */

/** The far end of one side of the bench. */
export interface Side {
	send(n: number): Promise<unknown>;
}

/** `done`: the messages that arrived; `latencies`: their send-to-arrival times. */
export interface Window extends LoadWindow {
	duplicates: number;
}

/** Longest wait for the messages of a window to arrive once its sends are done. */
const ARRIVAL_TIMEOUT_MS = 60_000;

export class Arrivals {
	private readonly started = new Map<number, number>();
	private readonly done = new Set<number>();
	latencies: number[] = [];
	duplicates = 0;
	lastAt = 0;

	sent(n: number): void {
		this.started.set(n, performance.now());
	}

	/** A send that failed: nothing to wait for. */
	dropped(n: number): void {
		this.started.delete(n);
	}

	arrived(n: number, at: number): void {
		const began = this.started.get(n);
		if (began === undefined) {
			if (this.done.has(n)) this.duplicates++;
			return;
		}
		this.started.delete(n);
		this.done.add(n);
		this.latencies.push(at - began);
		this.lastAt = at;
	}

	get waiting(): number {
		return this.started.size;
	}

	/** Starts a window: what arrived before is forgotten (a late duplicate of it still counts). */
	reset(): void {
		this.latencies = [];
		this.duplicates = 0;
		this.lastAt = 0;
	}
}

/** Numbers unique across every window of a run, so a late arrival is never taken for a new message. */
let next = 0;

export async function window(side: Side, arrivals: Arrivals, ms: number, inFlight: number): Promise<Window> {
	arrivals.reset();
	const errors: Record<string, number> = {};
	const start = performance.now();
	const deadline = start + ms;
	await Promise.all(
		Array.from({ length: inFlight }, async () => {
			while (performance.now() < deadline) {
				const n = next++;
				arrivals.sent(n);
				await side.send(n).catch((err: { type?: string; name?: string }) => {
					arrivals.dropped(n);
					const type = String(err.type ?? err.name ?? "Error");
					errors[type] = (errors[type] ?? 0) + 1;
				});
			}
		})
	);
	const waitUntil = performance.now() + ARRIVAL_TIMEOUT_MS;
	while (arrivals.waiting > 0) {
		if (performance.now() > waitUntil) throw new Error(`${arrivals.waiting} messages did not arrive within ${ARRIVAL_TIMEOUT_MS / 1000} s`);
		await new Promise(r => setTimeout(r, 2));
	}
	return { done: arrivals.latencies.length, ms: arrivals.lastAt - start, latencies: arrivals.latencies, duplicates: arrivals.duplicates, errors };
}

export interface SideFigures extends LoadFigures {
	duplicates: number;
}

/** A side's windows together (money-load.ts's figures: the mean rate, the percentiles of every message), and the messages that arrived twice. */
export function sideFigures(windows: Window[]): SideFigures {
	return { ...figuresOf(windows), duplicates: windows.reduce((sum, w) => sum + w.duplicates, 0) };
}
