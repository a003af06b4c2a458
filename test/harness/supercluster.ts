import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { Socket } from "node:net";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "./free-port.ts";

const NATS_SERVER = process.env.EDGEHOME_TEST_NATS_SERVER ?? "nats-server";

/** A running NATS supercluster: one server per region, every region gatewayed to every other. */
export interface Supercluster {
	/** Client URL of each region's server, by region id. */
	readonly urls: Record<string, string>;
	/** Kills every server and removes the config, log and JetStream files. */
	stop(): Promise<void>;
	/** SIGKILLs one region's server, as a crash would. */
	kill(regionId: string): Promise<void>;
	/** Starts one region's server again on the same ports and config (killing it first if running), then waits for the gateways. */
	restart(regionId: string): Promise<void>;
}

export interface SuperclusterOptions {
	/** How long the servers get to accept clients and connect their gateways. */
	readyTimeoutMs?: number;
	/** Relays put in front of some regions' gateways (see GatewayFront); none by default. */
	gatewayFront?: GatewayFront;
}

/**
 * Something this process runs in front of a region's gateway port, such as the relays of
 * mirror-lag.ts: the region advertises the front's port instead of its own, so every other
 * server's gateway connection into that region passes through it and a test can slow or hold
 * what crosses into the region.
 */
export interface GatewayFront {
	/** The regions whose gateway is fronted. */
	readonly regions: readonly string[];
	/** Starts (or, on a retried start, restarts) the front of `regionId` forwarding to 127.0.0.1:`gatewayPort`; resolves with the port it listens on. */
	open(regionId: string, gatewayPort: number): Promise<number>;
	/** Stops every front; the supercluster's stop() calls it. */
	close(): Promise<void>;
}

interface Ports {
	client: number;
	cluster: number;
	gateway: number;
	http: number;
}

interface Server {
	readonly region: string;
	readonly ports: Ports;
	/** The gateway port the other servers dial: the front's when the region has one. */
	gatewayDialed: number;
	readonly conf: string;
	readonly log: string;
	proc?: ChildProcess;
	watchdog?: ChildProcess;
	spawnError?: Error;
}

/** Startup failed because a port picked as free was taken before the server bound it. */
class PortTakenError extends Error {}

export async function startSupercluster(regionIds: string[], opts: SuperclusterOptions = {}): Promise<Supercluster> {
	// One server routed to itself never elects a JetStream leader: a supercluster needs two regions.
	if (regionIds.length < 2 || new Set(regionIds).size !== regionIds.length)
		throw new Error(`startSupercluster needs at least two distinct region ids, got [${regionIds.join(", ")}]`);
	const readyTimeoutMs = opts.readyTimeoutMs ?? 20_000;
	// freePort() only says a port was free a moment ago; losing that race is retried with new ports.
	for (let attempt = 1; ; attempt++) {
		try {
			return await attemptStart(regionIds, readyTimeoutMs, opts.gatewayFront);
		} catch (err) {
			if (!(err instanceof PortTakenError) || attempt === 3) {
				await opts.gatewayFront?.close();
				throw err;
			}
		}
	}
}

async function attemptStart(regionIds: string[], readyTimeoutMs: number, front?: GatewayFront): Promise<Supercluster> {
	const dir = mkdtempSync(join(tmpdir(), "edgehome-supercluster-"));
	const ports = await distinctFreePorts(regionIds.length * 4);
	const servers = regionIds.map(
		(region, i): Server => ({
			region,
			ports: { client: ports[i * 4]!, cluster: ports[i * 4 + 1]!, gateway: ports[i * 4 + 2]!, http: ports[i * 4 + 3]! },
			gatewayDialed: ports[i * 4 + 2]!,
			conf: join(dir, `${region}.conf`),
			log: join(dir, `${region}.log`)
		})
	);
	for (const regionId of front?.regions ?? []) {
		const server = servers.find(s => s.region === regionId);
		if (!server) throw new Error(`gateway front for "${regionId}", which is not in this supercluster (${regionIds.join(", ")})`);
		server.gatewayDialed = await front!.open(regionId, server.ports.gateway);
	}
	for (const server of servers) {
		const store = join(dir, `${server.region}-js`);
		mkdirSync(store);
		writeFileSync(server.conf, serverConfig(server, store, servers));
	}

	let stopped = false;
	const byRegion = (regionId: string): Server => {
		const server = servers.find(s => s.region === regionId);
		if (!server) throw new Error(`no region "${regionId}" in this supercluster (${regionIds.join(", ")})`);
		return server;
	};
	const cluster: Supercluster = {
		urls: Object.fromEntries(servers.map(s => [s.region, `nats://127.0.0.1:${s.ports.client}`])),
		async stop() {
			if (stopped) return;
			stopped = true;
			await Promise.all(servers.map(terminate));
			await front?.close();
			rmSync(dir, { recursive: true, force: true });
		},
		async kill(regionId) {
			await terminate(byRegion(regionId));
		},
		async restart(regionId) {
			const server = byRegion(regionId);
			await terminate(server);
			launch(server);
			await waitReady(servers, readyTimeoutMs);
		}
	};

	try {
		for (const server of servers) launch(server);
		await waitReady(servers, readyTimeoutMs);
	} catch (err) {
		await cluster.stop();
		throw err;
	}
	return cluster;
}

async function distinctFreePorts(count: number): Promise<number[]> {
	const ports = new Set<number>();
	while (ports.size < count) ports.add(await freePort());
	return [...ports];
}

function serverConfig(server: Server, store: string, all: Server[]): string {
	const { region, ports } = server;
	const gateways = all.map(s => `\t\t{ name: "${s.region}", url: "nats://127.0.0.1:${s.gatewayDialed}" }`);
	// A fronted region must also gossip the front's address, or servers would learn its own port and go around the front.
	const advertise = server.gatewayDialed === ports.gateway ? [] : [`\tadvertise: "127.0.0.1:${server.gatewayDialed}"`];
	return [
		`server_name: "${region}"`,
		`listen: "127.0.0.1:${ports.client}"`,
		`http: "127.0.0.1:${ports.http}"`,
		`jetstream { store_dir: "${store}" }`,
		// JetStream refuses gateways unless the server is in a named cluster with a route; a
		// one-server cluster routes to itself.
		"cluster {",
		`\tname: "${region}"`,
		`\tlisten: "127.0.0.1:${ports.cluster}"`,
		`\troutes: ["nats-route://127.0.0.1:${ports.cluster}"]`,
		"}",
		"gateway {",
		`\tname: "${region}"`,
		`\tlisten: "127.0.0.1:${ports.gateway}"`,
		...advertise,
		"\tgateways: [",
		...gateways,
		"\t]",
		"}",
		""
	].join("\n");
}

function launch(server: Server): void {
	const out = openSync(server.log, "a");
	try {
		server.spawnError = undefined;
		const proc = spawn(NATS_SERVER, ["-c", server.conf], { stdio: ["ignore", out, out] });
		proc.once("error", err => {
			server.spawnError = err;
		});
		server.proc = proc;
	} finally {
		closeSync(out);
	}
	if (server.proc.pid === undefined) return;
	// Kills the server when this process goes away without stopping it (crash, SIGKILL, a killed
	// test worker): the watchdog's stdin is a pipe only this process holds, so it reads EOF then.
	const watchdog = spawn("sh", ["-c", 'read _; kill -KILL "$0"', String(server.proc.pid)], {
		stdio: ["pipe", "ignore", "ignore"]
	});
	watchdog.unref();
	(watchdog.stdin as Socket).unref();
	server.watchdog = watchdog;
}

async function terminate(server: Server): Promise<void> {
	const { proc, watchdog } = server;
	server.proc = undefined;
	server.watchdog = undefined;
	// The watchdog goes first so that it can never fire at a pid the kernel has since reused.
	watchdog?.kill("SIGKILL");
	if (!proc || exited(proc)) return;
	const gone = new Promise(resolve => proc.once("exit", resolve));
	proc.kill("SIGKILL");
	await gone;
}

function exited(proc: ChildProcess): boolean {
	return proc.exitCode !== null || proc.signalCode !== null;
}

/** Waits until every running server takes clients and has an outbound gateway to every other running one. */
async function waitReady(servers: Server[], timeoutMs: number): Promise<void> {
	const deadline = Date.now() + timeoutMs;
	for (;;) {
		const running = servers.filter(s => s.proc);
		for (const server of running) {
			if (server.spawnError) throw new Error(`cannot start ${NATS_SERVER} for ${server.region}: ${server.spawnError.message}`);
			if (exited(server.proc!)) {
				const tail = logTail(server);
				const message = `nats-server for ${server.region} exited during startup (${server.proc!.exitCode ?? server.proc!.signalCode})\n${tail}`;
				throw /address already in use/i.test(tail) ? new PortTakenError(message) : new Error(message);
			}
		}
		const waitingFor = await firstUnready(running);
		if (!waitingFor) return;
		if (Date.now() >= deadline) throw new Error(`supercluster not ready within ${timeoutMs} ms: ${waitingFor}\n${running.map(s => logTail(s)).join("\n")}`);
		await sleep(100);
	}
}

async function firstUnready(running: Server[]): Promise<string | undefined> {
	for (const server of running) {
		if (!(await acceptsClients(server.ports.client))) return `${server.region} does not accept clients yet`;
		const outbound = await outboundGateways(server.ports.http);
		const missing = running.filter(s => s !== server && !outbound.includes(s.region)).map(s => s.region);
		if (missing.length) return `${server.region} has no outbound gateway to ${missing.join(", ")}`;
		// Streams and consumers can only be created once JetStream has elected its meta leader.
		if (!(await jetStreamLeader(server.ports.http))) return `${server.region} sees no JetStream meta leader yet`;
	}
	return undefined;
}

async function jetStreamLeader(httpPort: number): Promise<string | undefined> {
	try {
		const res = await fetch(`http://127.0.0.1:${httpPort}/jsz`, { signal: AbortSignal.timeout(1000) });
		if (!res.ok) return undefined;
		const body = (await res.json()) as { meta_cluster?: { leader?: string } };
		return body.meta_cluster?.leader || undefined;
	} catch {
		return undefined;
	}
}

/** True once the server greets a client connection with its INFO line. */
function acceptsClients(port: number): Promise<boolean> {
	return new Promise(resolve => {
		const socket = connect(port, "127.0.0.1");
		const done = (ok: boolean) => {
			socket.destroy();
			resolve(ok);
		};
		socket.setTimeout(1000, () => done(false));
		socket.once("error", () => done(false));
		socket.once("data", chunk => done(chunk.toString("latin1").startsWith("INFO ")));
	});
}

async function outboundGateways(httpPort: number): Promise<string[]> {
	try {
		const res = await fetch(`http://127.0.0.1:${httpPort}/gatewayz`, { signal: AbortSignal.timeout(1000) });
		if (!res.ok) return [];
		const body = (await res.json()) as { outbound_gateways?: Record<string, unknown> };
		return Object.keys(body.outbound_gateways ?? {});
	} catch {
		return [];
	}
}

function logTail(server: Server, lines = 20): string {
	let text: string;
	try {
		text = readFileSync(server.log, "utf8");
	} catch {
		text = "(no log)";
	}
	return `--- ${server.region} (${server.log}), last ${lines} lines ---\n${text.trimEnd().split("\n").slice(-lines).join("\n")}`;
}
