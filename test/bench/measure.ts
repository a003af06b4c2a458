import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

/** What every bench measures the same way: throughput at a fixed concurrency, sequential latency. */

export const IN_FLIGHT = 100;
export const THROUGHPUT_MS = 3000;
export const WARMUP_MS = 5000;
export const MAX_CALLS = 3_000_000;
export const SEQUENTIAL_CALLS = 2000;
export const READY_TIMEOUT_MS = 20_000;

export type Call = () => Promise<unknown>;

export interface Figures {
	callsPerSec: number;
	p50Ms: number;
	p99Ms: number;
}

/** Cleanups of the case being run, undone last-in first-out whatever happens. */
export type Cleanups = (() => Promise<void>)[];

export async function throughput(call: Call, durationMs: number): Promise<number> {
	let issued = 0;
	let done = 0;
	const start = performance.now();
	const deadline = start + durationMs;
	const worker = async () => {
		while (issued < MAX_CALLS && performance.now() < deadline) {
			issued++;
			await call();
			done++;
		}
	};
	await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
	return done / ((performance.now() - start) / 1000);
}

/**
 * Rates of two calls measured in alternating windows, so machine noise weighs on both alike:
 * one untimed warm-up window each, then `rounds` timed pairs; the mean of each.
 */
export async function alternate(
	a: Call,
	b: Call,
	rate: (call: Call, ms: number) => Promise<number>,
	opts: { warmupMs: number; windowMs: number; rounds: number }
): Promise<[number, number]> {
	await rate(a, opts.warmupMs);
	await rate(b, opts.warmupMs);
	let sumA = 0;
	let sumB = 0;
	for (let i = 0; i < opts.rounds; i++) {
		sumA += await rate(a, opts.windowMs);
		sumB += await rate(b, opts.windowMs);
	}
	return [sumA / opts.rounds, sumB / opts.rounds];
}

export async function latencies(call: Call): Promise<{ p50Ms: number; p99Ms: number }> {
	const [only] = await interleavedLatencies([call]);
	return only!;
}

/**
 * Sequential latency of several calls, measured in alternating batches so that the machine's
 * drifting load weighs on each alike; SEQUENTIAL_CALLS samples per call.
 */
export async function interleavedLatencies(calls: Call[], batches = 10): Promise<{ p50Ms: number; p99Ms: number }[]> {
	const samples = calls.map((): number[] => []);
	const perBatch = Math.ceil(SEQUENTIAL_CALLS / batches);
	for (let b = 0; b < batches; b++)
		for (const [i, call] of calls.entries())
			for (let n = 0; n < perBatch; n++) {
				const start = performance.now();
				await call();
				samples[i]!.push(performance.now() - start);
			}
	return samples.map(ms => {
		ms.sort((x, y) => x - y);
		const rank = (p: number) => ms[Math.ceil(p * ms.length) - 1]!;
		return { p50Ms: rank(0.5), p99Ms: rank(0.99) };
	});
}

export async function measure(call: Call): Promise<Figures> {
	// Untimed first: connections, link discovery and JIT; with two busy cores, throughput keeps climbing for seconds.
	await throughput(call, WARMUP_MS);
	const callsPerSec = await throughput(call, THROUGHPUT_MS);
	return { callsPerSec, ...(await latencies(call)) };
}

/** The server side of startServer: says "ready", and stops (then exits) when its stdin ends. */
export function serveUntilStdinEnds(name: string, stop: () => Promise<unknown>): void {
	process.stdin.once("end", () => {
		stop().then(
			() => process.exit(0),
			err => {
				console.error(`${name}: stop failed: ${(err as Error).message}`);
				process.exit(1);
			}
		);
	});
	process.stdin.resume();
	process.stdout.write("ready\n");
}

/** Starts a bench server script in its own process; it prints "ready" and lives until its stdin is closed. */
export async function startServer(cleanups: Cleanups, script: string, args: string[], env?: NodeJS.ProcessEnv): Promise<void> {
	const child = spawn(process.execPath, [script, ...args], { env: env ?? process.env, stdio: ["pipe", "pipe", "inherit"] });
	cleanups.push(() => stopServer(child));
	await new Promise<void>((resolve, reject) => {
		const timer = setTimeout(() => fail(new Error(`${script} not ready within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
		const onExit = (code: number | null) => fail(new Error(`${script} exited (${code}) before it was ready`));
		const fail = (err: Error) => {
			clearTimeout(timer);
			child.off("exit", onExit);
			reject(err);
		};
		child.once("error", fail);
		child.once("exit", onExit);
		child.stdout!.setEncoding("utf8").on("data", (text: string) => {
			if (!text.includes("ready")) return;
			clearTimeout(timer);
			child.off("exit", onExit);
			resolve();
		});
	});
}

async function stopServer(child: ChildProcess): Promise<void> {
	if (child.exitCode !== null || child.signalCode !== null) return;
	const gone = new Promise(resolve => child.once("exit", resolve));
	child.stdin!.end();
	// It drains and exits on its own; a server that hangs must not hang the bench.
	const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
	await gone;
	clearTimeout(timer);
}

export async function withCleanups<T>(run: (cleanups: Cleanups) => Promise<T>): Promise<T> {
	const cleanups: Cleanups = [];
	try {
		return await run(cleanups);
	} finally {
		for (const cleanup of cleanups.reverse()) await cleanup();
	}
}

export function table(rows: Record<string, Figures>): string {
	const header = ["case", `calls/s (${IN_FLIGHT} in flight)`, "p50 ms", "p99 ms"];
	const body = Object.entries(rows).map(([name, f]) => [name, Math.round(f.callsPerSec).toLocaleString("en-US"), f.p50Ms.toFixed(3), f.p99Ms.toFixed(3)]);
	const widths = header.map((h, i) => Math.max(h.length, ...body.map(r => r[i]!.length)));
	return [header, ...body].map(r => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  ")).join("\n");
}

export const round = (n: number, digits: number) => Number(n.toFixed(digits));

/**
 * CPU seconds this process and every process it started (servers, nats-server) have spent so far
 * (Linux /proc; undefined elsewhere). Per request, it says what a case costs all of them together,
 * which a throughput ratio on shared cores only estimates, and other work on the machine is left out.
 */
export function treeBusySeconds(): number | undefined {
	try {
		const stats = new Map<number, { ppid: number; seconds: number }>();
		for (const entry of readdirSync("/proc")) {
			if (!/^\d+$/.test(entry)) continue;
			let stat: string;
			try {
				stat = readFileSync(`/proc/${entry}/stat`, "utf8");
			} catch {
				continue; // gone meanwhile
			}
			// Fields after the command name (which may hold spaces): state, ppid, …, utime (14th), stime (15th).
			const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
			stats.set(Number(entry), { ppid: Number(fields[1]), seconds: (Number(fields[11]) + Number(fields[12])) / 100 });
		}
		const inTree = (pid: number): boolean => {
			for (let p = pid, hops = 0; p > 1 && hops < 64; p = stats.get(p)?.ppid ?? 0, hops++) if (p === process.pid) return true;
			return false;
		};
		let total = 0;
		for (const [pid, s] of stats) if (inTree(pid)) total += s.seconds;
		return total;
	} catch {
		return undefined;
	}
}

/** A number a bench takes from its environment (BENCH_*), else `fallback`. */
export const benchSetting = (name: string, fallback: number): number => Number(process.env[name] ?? fallback);
