import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import type { Socket } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DEFINITIONS_DIR } from "../../regions/loader.ts";
import type { Readiness } from "../../regions/runtime/health.ts";
import { freePorts } from "./free-port.ts";
import { within } from "./waiting.ts";

const LAUNCHER = fileURLToPath(new URL("../../app/launch/region.ts", import.meta.url));

/** The ports a region's launcher listens on, from its region file (EDGEHOME_REGIONS_DIR). */
export interface RegionPorts {
	app: number;
	www: number;
	cms: number;
	wx: number;
	metrics: number;
}

/**
 * Writes the shipped region files into `dir` with free ports, for EDGEHOME_REGIONS_DIR: the
 * shipped ports would clash with another test file's launchers. Returns each region's ports.
 */
export async function regionFilesWithFreePorts(dir: string): Promise<Record<string, RegionPorts>> {
	mkdirSync(dir, { recursive: true });
	const ports: Record<string, RegionPorts> = {};
	const files = readdirSync(DEFINITIONS_DIR).filter(f => f.endsWith(".json"));
	// Drawn together: ports drawn one after another may repeat, and the region loader refuses a port used twice.
	const free = await freePorts(files.length * 5);
	for (const file of files) {
		const definition = JSON.parse(readFileSync(join(DEFINITIONS_DIR, file), "utf8")) as { id: string; ports: RegionPorts };
		const [app, www, cms, wx, metrics] = free.splice(0, 5) as [number, number, number, number, number];
		definition.ports = { app, www, cms, wx, metrics };
		ports[definition.id] = definition.ports;
		writeFileSync(join(dir, file), JSON.stringify(definition, null, 2));
	}
	return ports;
}

export interface RegionProcess {
	readonly region: string;
	readonly proc: ChildProcess;
	/** When it was spawned (ms since epoch). */
	readonly startedAt: number;
	/** The last lines of the launcher's output (stdout and stderr). */
	logTail(lines?: number): string;
	/** SIGKILLs it (no drain, as a crash) and waits for its exit. */
	kill(): Promise<void>;
}

/**
 * `npm run region -- --region <id> --services <list>` as a child process, its output appended to
 * `logFile`. SIGKILLed when this process goes away without killing it (a watchdog holding a pipe).
 */
export function spawnRegionProcess(opts: { region: string; services: string[]; env: NodeJS.ProcessEnv; logFile: string }): RegionProcess {
	const out = openSync(opts.logFile, "a");
	let proc: ChildProcess;
	try {
		proc = spawn(process.execPath, [LAUNCHER, "--region", opts.region, "--services", opts.services.join(",")], {
			env: opts.env,
			stdio: ["ignore", out, out]
		});
	} finally {
		closeSync(out);
	}
	const watchdog = spawn("sh", ["-c", 'read _; kill -KILL "$0"', String(proc.pid)], { stdio: ["pipe", "ignore", "ignore"] });
	watchdog.unref();
	(watchdog.stdin as Socket).unref();
	const exited = () => proc.exitCode !== null || proc.signalCode !== null;
	return {
		region: opts.region,
		proc,
		startedAt: Date.now(),
		logTail: (lines = 30) => readFileSync(opts.logFile, "utf8").trimEnd().split("\n").slice(-lines).join("\n"),
		async kill() {
			// The watchdog goes first so that it can never fire at a pid the kernel has since reused.
			watchdog.kill("SIGKILL");
			if (exited()) return;
			const gone = new Promise(resolve => proc.once("exit", resolve));
			proc.kill("SIGKILL");
			await gone;
		}
	};
}

/** The node's `/readyz` answer (status and body), or undefined while its ops port does not answer. */
export async function readyz(metricsPort: number, token: string): Promise<{ status: number; body: Readiness } | undefined> {
	try {
		const res = await fetch(`http://127.0.0.1:${metricsPort}/readyz`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(1000) });
		return { status: res.status, body: (await res.json()) as Readiness };
	} catch {
		return undefined;
	}
}

/**
 * How long a launcher may take to say ready the first time: on two loaded cores (another test file's
 * servers beside it) loading its modules alone took over 30 s once.
 */
export const LAUNCHER_READY_MS = 75_000;

/**
 * Waits until the launcher's /readyz first says 200, failing with the tail of its log if it exits or
 * is not ready within `ms`; resolves with that answer's body.
 */
export async function untilReady(node: RegionProcess, metricsPort: number, token: string, ms: number): Promise<Readiness> {
	let body: Readiness | undefined;
	await within(async () => {
		if (node.proc.exitCode !== null) throw new Error(`exited with ${node.proc.exitCode}`);
		const r = await readyz(metricsPort, token);
		body = r?.body;
		return r?.status === 200;
	}, ms).catch(err => {
		throw new Error(`${node.region}'s launcher not ready: ${err.message}\n${node.logTail()}`);
	});
	return body!;
}
