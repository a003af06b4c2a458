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
/** The hub's JetStream domain, as in deploy/nats/hub-*.conf. */
export const HUB_DOMAIN = "hub";
/** A hub of fewer servers loses its quorum with any one of them: two regions get a witness server as a third. */
const MIN_HUB_SERVERS = 3;

/**
 * The production NATS topology on loopback ports (deploy/README.md, "Topology"): a hub cluster of one
 * server per region (plus witnesses up to three), JetStream domain `hub`, holding the directory's
 * origin; and per region one edge server, JetStream domain = the region id, a leaf node of the hub,
 * which the region's nodes connect to.
 */
export interface EdgeTopology {
	/** Client URL of each region's edge server, by region id: what the region's nodes connect to. */
	readonly urls: Record<string, string>;
	/** Client URL of each region's hub server, by region id. */
	readonly hubUrls: Record<string, string>;
	/** Where a region's directory lives: pass to openNatsKvDirectory with the edge URL and the bucket. */
	placement(regionId: string): DirectoryPlacement;
	/** Kills every server and removes the config, log and JetStream files. */
	stop(): Promise<void>;
	/**
	 * SIGKILLs a region's servers (edge and hub), as losing its site would; resolves once every running edge whose
	 * hub server this was has its leaf connection to another one (a second or two).
	 */
	kill(regionId: string): Promise<void>;
	/** Starts a region's servers again on the same ports and config (killing them first if running), then waits until they are ready. */
	restart(regionId: string): Promise<void>;
	/** SIGKILLs only a region's edge server. */
	killEdge(regionId: string): Promise<void>;
	restartEdge(regionId: string): Promise<void>;
	/** SIGKILLs only a region's hub server. */
	killHub(regionId: string): Promise<void>;
	restartHub(regionId: string): Promise<void>;
	/** Deletes the JetStream storage of a region's servers, which must be killed: a lost disk. */
	wipe(regionId: string): void;
	/** Pids of a region's running servers, for a test that moves them (e.g. into a network namespace). */
	pids(regionId: string): { edge?: number; hub?: number };
	/** The region whose hub server the region's edge holds its leaf-node connection to; undefined while it holds none. */
	leafHubOf(regionId: string): Promise<string | undefined>;
}

export interface DirectoryPlacement {
	domain: string;
	originDomain: string;
	originReplicas: number;
}

export interface EdgeTopologyOptions {
	/** How long the servers get to accept clients, connect their leaf nodes and elect the hub's leader. */
	readyTimeoutMs?: number;
	/** Relays put in front of the hub leaf-node port some regions' edges dial (see LinkFront); none by default. */
	linkFront?: LinkFront;
	/**
	 * A command the servers of a site are started through, e.g. `["ip", "netns", "exec", "ns-cn-east"]`; called with
	 * a region id, or `hub-witness-<n>` for a witness. Its last word runs nats-server in its place (same pid).
	 */
	spawnPrefix?: (site: string) => string[];
	/** The address a site's servers listen on and are dialed at (default 127.0.0.1). */
	hostOf?: (site: string) => string;
	/**
	 * Where this process and the nodes it starts reach a site's servers, when not at hostOf (e.g. from outside the site's
	 * network namespace): the URLs and readiness checks use it, and the servers then listen on every address.
	 */
	clientHostOf?: (site: string) => string;
}

/**
 * Something this process runs in front of the hub leaf-node port a region's edge dials, such as the
 * relays of mirror-lag.ts: a fronted region's edge dials only its own hub server, through the front,
 * so a test can slow or hold what crosses into the region (its mirror deliveries among it).
 */
export interface LinkFront {
	/** The regions whose link into the hub is fronted. */
	readonly regions: readonly string[];
	/** Starts (or, on a retried start, restarts) the front of `regionId` forwarding to 127.0.0.1:`leafPort`; resolves with the port it listens on. */
	open(regionId: string, leafPort: number): Promise<number>;
	/** Stops every front; the topology's stop() calls it. */
	close(): Promise<void>;
}

type Role = "edge" | "hub";

interface Server {
	readonly role: Role;
	/** The region (or witness) the server belongs to. */
	readonly site: string;
	readonly name: string;
	/** Where other servers dial it. */
	readonly host: string;
	/** Where it listens. */
	readonly listenHost: string;
	/** Where this process and the nodes reach it. */
	readonly clientHost: string;
	readonly ports: { client: number; http: number; cluster: number; leaf: number };
	readonly conf: string;
	readonly log: string;
	readonly store: string;
	/** An edge's leaf remotes: the port it dials (a hub's, or a front's), and the hub server behind it. */
	readonly dials: Map<number, Server>;
	proc?: ChildProcess;
	watchdog?: ChildProcess;
	spawnError?: Error;
}

/** Startup failed because a port picked as free was taken before the server bound it. */
class PortTakenError extends Error {}

export async function startEdgeTopology(regionIds: string[], opts: EdgeTopologyOptions = {}): Promise<EdgeTopology> {
	if (regionIds.length < 1 || new Set(regionIds).size !== regionIds.length || regionIds.includes(HUB_DOMAIN))
		throw new Error(`startEdgeTopology needs distinct region ids other than "${HUB_DOMAIN}", got [${regionIds.join(", ")}]`);
	// freePort() only says a port was free a moment ago; losing that race is retried with new ports.
	for (let attempt = 1; ; attempt++) {
		try {
			return await attemptStart(regionIds, opts);
		} catch (err) {
			if (!(err instanceof PortTakenError) || attempt === 3) {
				await opts.linkFront?.close();
				throw err;
			}
		}
	}
}

async function attemptStart(regionIds: string[], opts: EdgeTopologyOptions): Promise<EdgeTopology> {
	const readyTimeoutMs = opts.readyTimeoutMs ?? 20_000;
	const hostOf = opts.hostOf ?? (() => "127.0.0.1");
	const dir = mkdtempSync(join(tmpdir(), "edgehome-edges-"));
	const witnesses = Array.from({ length: Math.max(0, MIN_HUB_SERVERS - regionIds.length) }, (_, i) => `hub-witness-${i + 1}`);
	const layout: { role: Role; site: string }[] = [
		...[...regionIds, ...witnesses].map(site => ({ role: "hub" as const, site })),
		...regionIds.map(site => ({ role: "edge" as const, site }))
	];
	const ports = await distinctFreePorts(layout.length * 4);
	const servers = layout.map(({ role, site }, i): Server => {
		const name = role === "hub" ? `hub-${site.replace(/^hub-/, "")}` : `edge-${site}`;
		return {
			role,
			site,
			name,
			host: hostOf(site),
			listenHost: opts.clientHostOf ? "0.0.0.0" : hostOf(site),
			clientHost: opts.clientHostOf?.(site) ?? hostOf(site),
			ports: { client: ports[i * 4]!, http: ports[i * 4 + 1]!, cluster: ports[i * 4 + 2]!, leaf: ports[i * 4 + 3]! },
			conf: join(dir, `${name}.conf`),
			log: join(dir, `${name}.log`),
			store: join(dir, `${name}-js`),
			dials: new Map()
		};
	});
	const hubs = servers.filter(s => s.role === "hub");
	const find = (role: Role, regionId: string): Server => {
		const server = servers.find(s => s.role === role && s.site === regionId);
		if (!server) throw new Error(`no region "${regionId}" in this topology (${regionIds.join(", ")})`);
		return server;
	};
	for (const server of servers) {
		mkdirSync(server.store, { recursive: true });
		const remotes: string[] = [];
		if (server.role === "edge") {
			const own = find("hub", server.site);
			// Its own region's hub server first; a fronted edge dials it only, through the front.
			const fronted = opts.linkFront?.regions.includes(server.site) ?? false;
			for (const hub of fronted ? [own] : [own, ...hubs.filter(h => h !== own)]) {
				const port = fronted ? await opts.linkFront!.open(server.site, hub.ports.leaf) : hub.ports.leaf;
				server.dials.set(port, hub);
				remotes.push(`nats-leaf://${fronted ? "127.0.0.1" : hub.host}:${port}`);
			}
		}
		writeFileSync(server.conf, serverConfig(server, hubs, remotes));
	}
	for (const regionId of opts.linkFront?.regions ?? []) find("edge", regionId);

	let stopped = false;
	const spawnPrefix = opts.spawnPrefix ?? (() => []);
	const startAndWait = async (started: Server[]) => {
		const deadline = Date.now() + readyTimeoutMs;
		const start = async (server: Server) => {
			await terminate(server);
			launch(server, spawnPrefix(server.site));
		};
		// Hub servers first: an edge dials its own region's hub server first but stays on whichever answered
		// (no_randomize), so an edge up before its hub would hang on another region's and be cut off with it.
		const hubsStarted = started.filter(s => s.role === "hub");
		for (const hub of hubsStarted) await start(hub);
		for (const hub of hubsStarted) while (!exited(hub.proc!) && Date.now() < deadline && !(await acceptsClients(hub))) await sleep(50);
		for (const edge of started.filter(s => s.role === "edge")) await start(edge);
		await waitReady(servers, Math.max(1000, deadline - Date.now()));
	};
	const killAndSettle = async (killed: Server[]) => {
		await Promise.all(killed.map(terminate));
		await waitReady(servers, readyTimeoutMs, { leader: false });
	};
	const topology: EdgeTopology = {
		urls: Object.fromEntries(regionIds.map(r => [r, clientUrl(find("edge", r))])),
		hubUrls: Object.fromEntries(regionIds.map(r => [r, clientUrl(find("hub", r))])),
		placement: regionId => ({ domain: find("edge", regionId).site, originDomain: HUB_DOMAIN, originReplicas: Math.min(3, hubs.length) }),
		async stop() {
			if (stopped) return;
			stopped = true;
			await Promise.all(servers.map(terminate));
			await opts.linkFront?.close();
			rmSync(dir, { recursive: true, force: true });
		},
		kill: regionId => killAndSettle([find("edge", regionId), find("hub", regionId)]),
		restart: regionId => startAndWait([find("hub", regionId), find("edge", regionId)]),
		killEdge: regionId => terminate(find("edge", regionId)),
		restartEdge: regionId => startAndWait([find("edge", regionId)]),
		killHub: regionId => killAndSettle([find("hub", regionId)]),
		restartHub: regionId => startAndWait([find("hub", regionId)]),
		wipe(regionId) {
			for (const server of [find("edge", regionId), find("hub", regionId)]) {
				if (server.proc) throw new Error(`wipe(${regionId}): ${server.name} is running; kill it first`);
				rmSync(server.store, { recursive: true, force: true });
				mkdirSync(server.store);
			}
		},
		pids: regionId => ({ edge: find("edge", regionId).proc?.pid, hub: find("hub", regionId).proc?.pid }),
		leafHubOf: async regionId => (await leafHub(find("edge", regionId)))?.site
	};

	try {
		await startAndWait(servers);
	} catch (err) {
		await topology.stop();
		throw err;
	}
	return topology;
}

function clientUrl(server: Server): string {
	return `nats://${server.clientHost}:${server.ports.client}`;
}

async function distinctFreePorts(count: number): Promise<number[]> {
	const ports = new Set<number>();
	while (ports.size < count) ports.add(await freePort());
	return [...ports];
}

function serverConfig(server: Server, hubs: Server[], remotes: string[]): string {
	const { name, listenHost, ports } = server;
	const common = [`server_name: "${name}"`, `listen: "${listenHost}:${ports.client}"`, `http: "${listenHost}:${ports.http}"`];
	if (server.role === "edge")
		return [
			...common,
			// A standalone JetStream of its own: it answers with every other server gone.
			`jetstream { store_dir: "${server.store}", domain: "${server.site}" }`,
			"leafnodes {",
			// In this order: its own region's hub server while it runs, another only when it is gone.
			`\tremotes: [ { urls: [${remotes.map(u => `"${u}"`).join(", ")}], no_randomize: true } ]`,
			"}",
			""
		].join("\n");
	return [
		...common,
		`jetstream { store_dir: "${server.store}", domain: "${HUB_DOMAIN}" }`,
		"cluster {",
		'\tname: "edgehome-hub"',
		`\tlisten: "${listenHost}:${ports.cluster}"`,
		`\troutes: [${hubs.map(h => `"nats-route://${h.host}:${h.ports.cluster}"`).join(", ")}]`,
		"}",
		`leafnodes { listen: "${listenHost}:${ports.leaf}" }`,
		""
	].join("\n");
}

function launch(server: Server, prefix: string[]): void {
	const out = openSync(server.log, "a");
	try {
		server.spawnError = undefined;
		const [command, ...args] = [...prefix, NATS_SERVER, "-c", server.conf];
		const proc = spawn(command!, args, { stdio: ["ignore", out, out] });
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

/**
 * Waits until every running server takes clients; the running hub servers, when a quorum of them
 * runs (and `leader`), see a JetStream meta leader; and every running edge has its leaf connection when a hub
 * server runs. With fewer hub servers than a quorum nothing more is waited for: that is the test's case.
 */
async function waitReady(servers: Server[], timeoutMs: number, opts = { leader: true }): Promise<void> {
	const deadline = Date.now() + timeoutMs;
	for (;;) {
		const running = servers.filter(s => s.proc);
		for (const server of running) {
			if (server.spawnError) throw new Error(`cannot start ${NATS_SERVER} for ${server.name}: ${server.spawnError.message}`);
			if (exited(server.proc!)) {
				const tail = logTail(server);
				const message = `nats-server ${server.name} exited during startup (${server.proc!.exitCode ?? server.proc!.signalCode})\n${tail}`;
				throw /address already in use/i.test(tail) ? new PortTakenError(message) : new Error(message);
			}
		}
		const waitingFor = await firstUnready(servers, running, opts.leader);
		if (!waitingFor) return;
		if (Date.now() >= deadline) throw new Error(`edge topology not ready within ${timeoutMs} ms: ${waitingFor}\n${running.map(s => logTail(s)).join("\n")}`);
		await sleep(100);
	}
}

async function firstUnready(all: Server[], running: Server[], leader: boolean): Promise<string | undefined> {
	const quorum = leader && running.filter(s => s.role === "hub").length > all.filter(s => s.role === "hub").length / 2;
	for (const server of running) {
		if (!(await acceptsClients(server))) return `${server.name} does not accept clients yet`;
		const base = `http://${server.clientHost}:${server.ports.http}`;
		if (server.role === "hub" && quorum && !(await monitor<{ meta_cluster?: { leader?: string } }>(`${base}/jsz`))?.meta_cluster?.leader)
			return `${server.name} sees no JetStream meta leader yet`;
		if (server.role !== "edge" || ![...server.dials.values()].some(hub => hub.proc)) continue;
		if (!(await leafHub(server))) return `${server.name} has no leaf-node connection to a running hub server yet`;
	}
	return undefined;
}

/**
 * The running hub server an edge holds its leaf-node connection to. A connection to a server just killed may
 * still be listed for a moment: only one to a running hub server counts.
 */
async function leafHub(edge: Server): Promise<Server | undefined> {
	const leafs = (await monitor<{ leafs?: { port: number }[] }>(`http://${edge.clientHost}:${edge.ports.http}/leafz`))?.leafs ?? [];
	return leafs.map(leaf => edge.dials.get(leaf.port)).find(hub => hub?.proc);
}

async function monitor<T>(url: string): Promise<T | undefined> {
	try {
		const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
		return res.ok ? ((await res.json()) as T) : undefined;
	} catch {
		return undefined;
	}
}

/** True once the server greets a client connection with its INFO line. */
function acceptsClients(server: Server): Promise<boolean> {
	return new Promise(resolve => {
		const socket = connect(server.ports.client, server.clientHost);
		const done = (ok: boolean) => {
			socket.destroy();
			resolve(ok);
		};
		socket.setTimeout(1000, () => done(false));
		socket.once("error", () => done(false));
		socket.once("data", chunk => done(chunk.toString("latin1").startsWith("INFO ")));
	});
}

function logTail(server: Server, lines = 20): string {
	let text: string;
	try {
		text = readFileSync(server.log, "utf8");
	} catch {
		text = "(no log)";
	}
	return `--- ${server.name} (${server.log}), last ${lines} lines ---\n${text.trimEnd().split("\n").slice(-lines).join("\n")}`;
}
