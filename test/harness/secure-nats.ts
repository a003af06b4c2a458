import type { ChildProcess } from "node:child_process";
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, copyFileSync, cpSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect as connectTcp } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "./free-port.ts";

const NATS_SERVER = process.env.EDGEHOME_TEST_NATS_SERVER ?? "nats-server";
export const DEPLOY_NATS = join(import.meta.dirname, "..", "..", "deploy", "nats");

/** The CA and per-region server certificates, made by the shipped deploy/nats/make-certs.sh. */
export function makeCertificates(dir: string, regions: string[]): void {
	const run = spawnSync("sh", [join(DEPLOY_NATS, "make-certs.sh"), dir, ...regions], { encoding: "utf8" });
	if (run.status !== 0) throw new Error(`make-certs.sh failed: ${run.stderr}`);
}

/**
 * A server certificate of the CA in `pki` (a make-certs.sh folder) naming `dnsName` only, written as a
 * region's folder of make-certs.sh into `dir`: a genuine certificate presented at an address it does
 * not name, as a copied one would be.
 */
export function certificateNaming(pki: string, dir: string, dnsName: string): void {
	mkdirSync(dir, { recursive: true });
	writeFileSync(join(dir, "server.ext"), `subjectAltName=DNS:${dnsName}\nextendedKeyUsage=serverAuth,clientAuth\n`);
	for (const args of [
		["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", `/CN=${dnsName}`, "-keyout", "server.key", "-out", "server.csr"],
		[
			"x509",
			"-req",
			"-in",
			"server.csr",
			"-CA",
			join(pki, "ca.crt"),
			"-CAkey",
			join(pki, "ca.key"),
			"-CAcreateserial",
			"-days",
			"1",
			"-extfile",
			"server.ext",
			"-out",
			"server.crt"
		]
	]) {
		const run = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
		if (run.status !== 0) throw new Error(`openssl ${args[0]} failed: ${run.stderr}`);
	}
	copyFileSync(join(pki, "ca.crt"), join(dir, "ca.crt"));
}

/**
 * The passwords deploy/nats/auth.conf reads from the server's environment, made as deploy/README.md
 * says: NATS parses a variable's value as a config value, so one starting with a digit can be taken
 * for a number; a letter first keeps it a string.
 */
export function natsPasswords(): { NATS_SERVICE_PASSWORD: string; NATS_OPS_PASSWORD: string } {
	return { NATS_SERVICE_PASSWORD: `p${randomBytes(24).toString("hex")}`, NATS_OPS_PASSWORD: `p${randomBytes(24).toString("hex")}` };
}

/**
 * A server's working directory (<root>/<name>) as in the deploy stacks: the shipped auth.conf beside the
 * config, the region's certificates in certs/.
 */
export function serverDir(root: string, region: string, certs: string, name = region): string {
	const dir = join(root, name);
	mkdirSync(dir, { recursive: true });
	copyFileSync(join(DEPLOY_NATS, "auth.conf"), join(dir, "auth.conf"));
	cpSync(join(certs, region), join(dir, "certs"), { recursive: true });
	return dir;
}

export interface SecureNats {
	url: string;
	/** The CA certificate clients trust. */
	caFile: string;
	passwords: ReturnType<typeof natsPasswords>;
	stop(): Promise<void>;
}

/** One NATS server with the shipped client TLS and users (deploy/nats/auth.conf), and JetStream. */
export async function startSecureNats(): Promise<SecureNats> {
	const root = mkdtempSync(join(tmpdir(), "edgehome-secure-nats-"));
	makeCertificates(join(root, "pki"), ["cn-east"]);
	const dir = serverDir(root, "cn-east", join(root, "pki"));
	const [port, http] = [await freePort(), await freePort()];
	writeFileSync(
		join(dir, "server.conf"),
		[
			`server_name: "secure-test"`,
			`listen: "127.0.0.1:${port}"`,
			`http: "127.0.0.1:${http}"`,
			`include "auth.conf"`,
			`jetstream { store_dir: "${join(dir, "js")}" }`,
			""
		].join("\n")
	);
	const passwords = natsPasswords();
	const proc: ChildProcess = spawn(NATS_SERVER, ["-c", join(dir, "server.conf")], { cwd: dir, env: { ...process.env, ...passwords }, stdio: "ignore" });
	const stop = async () => {
		if (proc.exitCode === null) {
			proc.kill("SIGKILL");
			await new Promise(r => proc.once("exit", r));
		}
		rmSync(root, { recursive: true, force: true });
	};
	for (let i = 0; ; i++) {
		const ok = await fetch(`http://127.0.0.1:${http}/healthz`).then(
			r => r.ok,
			() => false
		);
		if (ok) break;
		if (i > 100 || proc.exitCode !== null) {
			await stop();
			throw new Error("the secure NATS server did not start");
		}
		await sleep(100);
	}
	return { url: `nats://127.0.0.1:${port}`, caFile: join(dir, "certs", "ca.crt"), passwords, stop };
}

/** The loopback ports of one server running a shipped config. */
export interface ShippedPorts {
	client: number;
	http: number;
	/** The hub's route port (6222 as shipped); unused by an edge server. */
	cluster: number;
	/** The hub's leaf-node port (7422 as shipped); unused by an edge server. */
	leaf: number;
}

/** Which shipped config: a region's edge server (`<region>.conf`) or its server of the hub (`hub-<region>.conf`). */
export type ShippedRole = "edge" | "hub";

export interface LoopbackOptions {
	role: ShippedRole;
	ports: ShippedPorts;
	/** Where each region's hub server named in the shipped configs is dialed: its route and leaf-node ports. */
	hubs: Record<string, { cluster: number; leaf: number }>;
	storeDir: string;
	/** Another server name than the shipped one. */
	serverName?: string;
}

/** Swaps `from` for `to` in `text`, insisting that `from` is there. */
function swap(text: string, from: string, to: string): string {
	if (!text.includes(from)) throw new Error(`the shipped NATS config no longer has ${from}: update loopbackConfig`);
	return text.replaceAll(from, to);
}

export const shippedConfName = (role: ShippedRole, region: string) => (role === "hub" ? `hub-${region}` : region);

/**
 * A shipped deploy/nats config as it runs on this host: each address it names (the 0.0.0.0 listeners,
 * the hub.*.edgehome.internal names of routes, leaf-node remotes and advertisements) becomes a 127.0.0.1
 * port, and the JetStream store a temporary folder; TLS, users, domains and names stay as shipped. An
 * address it expects that is gone, or one it does not know that is left, throws: a changed config is
 * never tested half-rewritten.
 */
export function loopbackConfig(region: string, opts: LoopbackOptions): string {
	const { ports, role } = opts;
	const name = shippedConfName(role, region);
	let text = readFileSync(join(DEPLOY_NATS, `${name}.conf`), "utf8");
	if (opts.serverName) text = swap(text, `server_name: "${role === "hub" ? name : `nats-${region}-1`}"`, `server_name: "${opts.serverName}"`);
	text = swap(text, `listen: "0.0.0.0:4222"`, `listen: "127.0.0.1:${ports.client}"`);
	text = swap(text, `http: "0.0.0.0:8222"`, `http: "127.0.0.1:${ports.http}"`);
	text = swap(text, `store_dir: "/data/jetstream"`, `store_dir: "${opts.storeDir}"`);
	if (role === "hub") {
		text = swap(text, `listen: "0.0.0.0:6222"`, `listen: "127.0.0.1:${ports.cluster}"`);
		text = swap(text, `advertise: "hub.${region}.edgehome.internal:6222"`, `advertise: "127.0.0.1:${ports.cluster}"`);
		text = swap(text, `listen: "0.0.0.0:7422"`, `listen: "127.0.0.1:${ports.leaf}"`);
		text = swap(text, `advertise: "hub.${region}.edgehome.internal:7422"`, `advertise: "127.0.0.1:${ports.leaf}"`);
	}
	text = text.replaceAll(/nats-(route|leaf):\/\/hub\.([a-z0-9-]+)\.edgehome\.internal:(6222|7422)/g, (_, kind: string, hub: string) => {
		const port = opts.hubs[hub]?.[kind === "route" ? "cluster" : "leaf"];
		if (port === undefined) throw new Error(`no loopback port for the ${kind} of hub ${hub}`);
		return `nats-${kind}://127.0.0.1:${port}`;
	});
	const settings = text.replaceAll(/^\s*#.*$/gm, "").replaceAll(/127\.0\.0\.1:[0-9]+/g, "");
	const left = /0\.0\.0\.0|hub\.[a-z0-9-]+\.edgehome\.internal|:(4222|6222|7422|8222)\b/.exec(settings);
	if (left) throw new Error(`the shipped NATS config ${name}.conf names an address loopbackConfig does not rewrite: ${left[0]}`);
	return text;
}

/** A nats-server running a shipped config (loopbackConfig) in a working directory laid out as in the stacks. */
export interface ShippedServer {
	readonly region: string;
	readonly role: ShippedRole;
	readonly url: string;
	readonly ports: ShippedPorts;
	readonly caFile: string;
	readonly passwords: ReturnType<typeof natsPasswords>;
	/** What the server has logged so far. */
	log(): string;
	/** GET on the monitoring port (/varz, /leafz, /routez, /connz …), as JSON. */
	monitor<T>(path: string): Promise<T>;
	stop(): Promise<void>;
}

export interface ShippedServerOptions extends LoopbackOptions {
	region: string;
	/** Folder of make-certs.sh's output whose <region> certificates the server uses. */
	certs: string;
	/** The server's working directory is <root>/<config name>. */
	root: string;
}

export async function startShippedServer(opts: ShippedServerOptions): Promise<ShippedServer> {
	const name = shippedConfName(opts.role, opts.region);
	const dir = serverDir(opts.root, opts.region, opts.certs, name);
	writeFileSync(join(dir, "edgehome.conf"), loopbackConfig(opts.region, opts));
	const logFile = join(dir, "server.log");
	const out = openSync(logFile, "a");
	const passwords = natsPasswords();
	// The shell holds the server and kills it when its stdin closes: on stop(), and when this
	// process dies without stopping it (no orphan server after a crashed test worker).
	const proc = spawn("sh", ["-c", '"$0" -c edgehome.conf & read _; kill -KILL $!; wait $!', NATS_SERVER], {
		cwd: dir,
		env: { ...process.env, ...passwords },
		stdio: ["pipe", out, out]
	});
	closeSync(out);
	const exited = new Promise(resolve => proc.once("exit", resolve));
	const server: ShippedServer = {
		region: opts.region,
		role: opts.role,
		url: `nats://127.0.0.1:${opts.ports.client}`,
		ports: opts.ports,
		caFile: join(dir, "certs", "ca.crt"),
		passwords,
		log: () => readFileSync(logFile, "utf8"),
		async monitor<T>(path: string) {
			const res = await fetch(`http://127.0.0.1:${opts.ports.http}${path}`, { signal: AbortSignal.timeout(2000) });
			if (!res.ok) throw new Error(`${path} on ${name}'s server answered ${res.status}`);
			return (await res.json()) as T;
		},
		async stop() {
			proc.stdin?.end();
			await exited;
		}
	};
	for (
		let i = 0;
		!(await server.monitor("/varz").then(
			() => true,
			() => false
		));
		i++
	) {
		if (i > 100 || proc.exitCode !== null) {
			await server.stop();
			throw new Error(`the shipped NATS server ${name} did not start:\n${server.log()}`);
		}
		await sleep(100);
	}
	return server;
}

/** The shipped hub and edge configs of some regions, running. */
export interface SecureEdges {
	/** Each running region's edge server. */
	readonly edges: Record<string, ShippedServer>;
	/** Each running region's hub server. */
	readonly hubs: Record<string, ShippedServer>;
	/** Where every region's hub server named in the shipped configs is dialed; nothing listens there for a region not started. */
	readonly hubPorts: Record<string, { cluster: number; leaf: number }>;
	/** The folder the servers' working directories, stores and certificates (pki/) are in. */
	readonly root: string;
	stop(): Promise<void>;
}

async function distinctPorts(count: number): Promise<number[]> {
	const ports = new Set<number>();
	while (ports.size < count) ports.add(await freePort());
	return [...ports];
}

/**
 * The shipped configs of `running` (at least two: the hub's JetStream needs two of its three servers for
 * a leader), the hub and the edge server of each, with certificates from make-certs.sh, started on
 * loopback; resolves once the hub has its meta leader and every edge its leaf connection.
 */
export async function startSecureEdges(running: string[], all: string[], readyMs = 20_000): Promise<SecureEdges> {
	const root = mkdtempSync(join(tmpdir(), "edgehome-secure-edges-"));
	makeCertificates(join(root, "pki"), running);
	const ports = await distinctPorts(all.length * 2 + running.length * 4);
	const hubPorts = Object.fromEntries(all.map((region, i) => [region, { cluster: ports[i * 2]!, leaf: ports[i * 2 + 1]! }]));
	const edges: Record<string, ShippedServer> = {};
	const hubs: Record<string, ShippedServer> = {};
	const cluster: SecureEdges = {
		edges,
		hubs,
		hubPorts,
		root,
		async stop() {
			await Promise.all([...Object.values(edges), ...Object.values(hubs)].map(s => s.stop()));
			rmSync(root, { recursive: true, force: true });
		}
	};
	try {
		let next = all.length * 2;
		const start = async (role: ShippedRole, region: string) => {
			const [client, http] = [ports[next++]!, ports[next++]!];
			const storeDir = join(root, `${shippedConfName(role, region)}-js`);
			mkdirSync(storeDir);
			return startShippedServer({ role, region, root, certs: join(root, "pki"), ports: { client, http, ...hubPorts[region]! }, hubs: hubPorts, storeDir });
		};
		for (const region of running) hubs[region] = await start("hub", region);
		for (const region of running) edges[region] = await start("edge", region);
		const deadline = Date.now() + readyMs;
		for (const server of [...Object.values(hubs), ...Object.values(edges)])
			for (;;) {
				const ready =
					server.role === "hub"
						? (await server.monitor<{ meta_cluster?: { leader?: string } }>("/jsz").catch(() => undefined))?.meta_cluster?.leader
						: (await server.monitor<{ leafnodes?: number }>("/leafz").catch(() => undefined))?.leafnodes;
				if (ready) break;
				if (Date.now() > deadline) throw new Error(`secure edges not ready within ${readyMs} ms at ${server.role} ${server.region}:\n${server.log()}`);
				await sleep(100);
			}
	} catch (err) {
		await cluster.stop();
		throw err;
	}
	return cluster;
}

/**
 * Logs in to `url` over plain TCP, as a client that ignores the server's tls_required would:
 * resolves with everything the server sent before it hung up (at most 5 s). A server that admits
 * the login answers the PING with PONG.
 */
export function plainTextLogin(url: string, user: string, password: string): Promise<string> {
	return new Promise((resolve, reject) => {
		const socket = connectTcp({ host: "127.0.0.1", port: Number(new URL(url).port) });
		let heard = "";
		let sent = false;
		socket.on("data", chunk => {
			heard += chunk.toString("latin1");
			if (!sent && heard.startsWith("INFO ") && heard.includes("\r\n")) {
				sent = true;
				socket.write(`CONNECT ${JSON.stringify({ user, pass: password, verbose: false })}\r\nPING\r\n`);
			}
		});
		socket.on("close", () => resolve(heard));
		socket.on("error", reject);
		socket.setTimeout(5000, () => socket.destroy());
	});
}
