/**
 * bench:money's load: a fixed number of calls in flight for a while, every call's time kept and
 * every refusal counted by its type, so a rate never hides failures behind it.
 */

export interface LoadWindow {
	/** Calls that succeeded. */
	done: number;
	ms: number;
	/** Times of the calls that succeeded (ms). */
	latencies: number[];
	errors: Record<string, number>;
}

export interface LoadFigures {
	callsPerSec: number;
	p50Ms: number;
	p99Ms: number;
	calls: number;
	errors: Record<string, number>;
}

/** `call(n)` with `inFlight` at a time for `ms` (the calls in flight at the end are waited for and counted). */
export async function drive(call: (n: number) => Promise<unknown>, ms: number, inFlight: number): Promise<LoadWindow> {
	const window: LoadWindow = { done: 0, ms: 0, latencies: [], errors: {} };
	let issued = 0;
	const start = performance.now();
	const deadline = start + ms;
	const worker = async () => {
		while (performance.now() < deadline) {
			const began = performance.now();
			try {
				await call(issued++);
				window.latencies.push(performance.now() - began);
				window.done++;
			} catch (err) {
				const e = err as { type?: string; code?: string | number; name?: string };
				const type = String(e.type ?? e.code ?? e.name ?? "Error");
				window.errors[type] = (window.errors[type] ?? 0) + 1;
			}
		}
	};
	await Promise.all(Array.from({ length: inFlight }, worker));
	window.ms = performance.now() - start;
	return window;
}

export function percentile(sorted: number[], p: number): number {
	if (!sorted.length) return Number.NaN;
	return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

/** The windows of one case together: its mean rate over the windows, and the percentiles of all its calls. */
export function figuresOf(windows: LoadWindow[]): LoadFigures {
	const sorted = windows.flatMap(w => w.latencies).sort((a, b) => a - b);
	const errors: Record<string, number> = {};
	for (const w of windows) for (const [type, n] of Object.entries(w.errors)) errors[type] = (errors[type] ?? 0) + n;
	return {
		callsPerSec: windows.reduce((sum, w) => sum + w.done / (w.ms / 1000), 0) / windows.length,
		p50Ms: percentile(sorted, 0.5),
		p99Ms: percentile(sorted, 0.99),
		calls: windows.reduce((sum, w) => sum + w.done, 0),
		errors
	};
}

/** Runs `count` calls with at most `limit` at a time (setup work: registrations, seeding). */
export async function inParallel(count: number, limit: number, call: (i: number) => Promise<unknown>): Promise<void> {
	let next = 0;
	await Promise.all(
		Array.from({ length: Math.min(limit, count) }, async () => {
			while (next < count) await call(next++);
		})
	);
}
