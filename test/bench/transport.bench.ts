import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import { ServiceBroker } from "moleculer";
import { regionNamespace } from "../../broker.config.ts";
import { RegionLinks } from "../../regions/links.ts";
import { REAL, runId } from "../harness/real-servers.ts";
import { startSupercluster } from "../harness/supercluster.ts";
import { benchBrokerOptions, benchEnv, echoSchema } from "./transport-server.ts";

/**
 * `npm run bench:transport`: the cost of one Moleculer call made locally, over NATS between two
 * processes, and across a supercluster gateway through a region link. Ends with one JSON line.
 */

const IN_FLIGHT = 100;
const THROUGHPUT_MS = 3000;
const WARMUP_MS = 5000;
const MAX_CALLS = 3_000_000;
const SEQUENTIAL_CALLS = 2000;
const READY_TIMEOUT_MS = 20_000;

const SERVER_SCRIPT = join(import.meta.dirname, "transport-server.ts");
const PARAMS = { hello: "edge" };

type Call = () => Promise<unknown>;

interface Figures {
	callsPerSec: number;
	p50Ms: number;
	p99Ms: number;
}

/** Cleanups of the case being run, undone last-in first-out whatever happens. */
type Cleanups = (() => Promise<void>)[];

async function throughput(call: Call, durationMs: number): Promise<number> {
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

async function latencies(call: Call): Promise<{ p50Ms: number; p99Ms: number }> {
	const ms: number[] = [];
	for (let i = 0; i < SEQUENTIAL_CALLS; i++) {
		const start = performance.now();
		await call();
		ms.push(performance.now() - start);
	}
	ms.sort((a, b) => a - b);
	const rank = (p: number) => ms[Math.ceil(p * ms.length) - 1]!;
	return { p50Ms: rank(0.5), p99Ms: rank(0.99) };
}

async function measure(call: Call): Promise<Figures> {
	// Untimed first: connections, link discovery and JIT; with two busy cores, throughput keeps climbing for seconds.
	await throughput(call, WARMUP_MS);
	const callsPerSec = await throughput(call, THROUGHPUT_MS);
	return { callsPerSec, ...(await latencies(call)) };
}

/** Starts transport-server.ts in its own process; it lives until its stdin is closed. */
async function startServer(cleanups: Cleanups, args: string[]): Promise<void> {
	const child = spawn(process.execPath, [SERVER_SCRIPT, ...args], { stdio: ["pipe", "pipe", "inherit"] });
	cleanups.push(() => stopServer(child));
	await new Promise<void>((resolve, reject) => {
		const timer = setTimeout(() => fail(new Error(`transport-server not ready within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
		const onExit = (code: number | null) => fail(new Error(`transport-server exited (${code}) before it was ready`));
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

async function withCleanups<T>(run: (cleanups: Cleanups) => Promise<T>): Promise<T> {
	const cleanups: Cleanups = [];
	try {
		return await run(cleanups);
	} finally {
		for (const cleanup of cleanups.reverse()) await cleanup();
	}
}

function benchLocal(): Promise<Figures> {
	return withCleanups(async cleanups => {
		const broker = new ServiceBroker({ ...benchBrokerOptions("cn-east", "embedded", benchEnv()), transporter: null });
		broker.createService(echoSchema);
		await broker.start();
		cleanups.push(() => broker.stop());
		return measure(() => broker.call("echo.echo", PARAMS));
	});
}

function benchNats(): Promise<Figures> {
	return withCleanups(async cleanups => {
		// Its own namespace, so it never meets other brokers on the shared server.
		const namespacePrefix = `bench-${runId()}-`;
		await startServer(cleanups, ["cn-east", REAL.nats, namespacePrefix]);
		const broker = new ServiceBroker(benchBrokerOptions("cn-east", "nats", benchEnv(REAL.nats, namespacePrefix)));
		await broker.start();
		cleanups.push(() => broker.stop());
		await broker.waitForServices("echo", READY_TIMEOUT_MS, 50);
		return measure(() => broker.call("echo.echo", PARAMS));
	});
}

function benchGateway(): Promise<Figures> {
	return withCleanups(async cleanups => {
		const cluster = await startSupercluster(["cn-east", "eu-central"]);
		cleanups.push(cluster.stop);
		await startServer(cleanups, ["eu-central", cluster.urls["eu-central"]!]);
		// Links made as regions/node.ts makes them, from a cn-east broker on cn-east's server: the
		// link joins eu-central's namespace there, and its calls cross the gateway.
		const env = benchEnv(cluster.urls["cn-east"]);
		const base = benchBrokerOptions("cn-east", "nats", env);
		const links = new RegionLinks(target => ({
			...base,
			namespace: regionNamespace(target, env),
			nodeID: `${base.nodeID}-link-${target}`
		}));
		cleanups.push(() => links.stop());
		return measure(() => links.call("eu-central", "echo.echo", PARAMS));
	});
}

function table(rows: Record<string, Figures>): string {
	const header = ["case", `calls/s (${IN_FLIGHT} in flight)`, "p50 ms", "p99 ms"];
	const body = Object.entries(rows).map(([name, f]) => [
		name,
		Math.round(f.callsPerSec).toLocaleString("en-US"),
		f.p50Ms.toFixed(3),
		f.p99Ms.toFixed(3)
	]);
	const widths = header.map((h, i) => Math.max(h.length, ...body.map(r => r[i]!.length)));
	return [header, ...body].map(r => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  ")).join("\n");
}

const round = (n: number, digits: number) => Number(n.toFixed(digits));

async function main(): Promise<void> {
	console.log(`transport bench: ${THROUGHPUT_MS / 1000} s at ${IN_FLIGHT} in flight, then ${SEQUENTIAL_CALLS} sequential calls, per case\n`);
	const local = await benchLocal();
	const nats = await benchNats();
	const gateway = await benchGateway();

	const ratios = {
		natsOverLocalThroughput: nats.callsPerSec / local.callsPerSec,
		natsOverLocalP50: nats.p50Ms / local.p50Ms,
		gatewayOverNatsThroughput: gateway.callsPerSec / nats.callsPerSec,
		gatewayOverNatsP50: gateway.p50Ms / nats.p50Ms
	};
	console.log(table({ local, nats, gateway }));
	console.log(
		`\nnats/local:   throughput x${ratios.natsOverLocalThroughput.toFixed(3)}, p50 x${ratios.natsOverLocalP50.toFixed(1)}` +
			`\ngateway/nats: throughput x${ratios.gatewayOverNatsThroughput.toFixed(3)}, p50 x${ratios.gatewayOverNatsP50.toFixed(2)}\n`
	);

	const figures = (f: Figures) => ({ callsPerSec: Math.round(f.callsPerSec), p50Ms: round(f.p50Ms, 4), p99Ms: round(f.p99Ms, 4) });
	console.log(
		JSON.stringify({
			local: figures(local),
			nats: figures(nats),
			gateway: figures(gateway),
			ratios: Object.fromEntries(Object.entries(ratios).map(([k, v]) => [k, round(v, 4)]))
		})
	);
}

main().catch(err => {
	console.error(err);
	process.exitCode = 1;
});
