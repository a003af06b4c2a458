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
 * A server's working directory as in the deploy stacks: the shipped auth.conf beside the config,
 * the region's certificates in certs/.
 */
export function serverDir(root: string, region: string, certs: string): string {
	const dir = join(root, region);
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
	cluster: number;
	gateway: number;
}

export interface LoopbackOptions {
	ports: ShippedPorts;
	/** The port each region named in the shipped gateway list is dialed at. */
	gateways: Record<string, number>;
	storeDir: string;
	/** The cluster port the route dials: the server's own by default (a one-server cluster), another's to join it. */
	routeTo?: number;
	/** Another server name than the shipped one: a second server of a cluster needs its own. */
	serverName?: string;
}

/** Swaps `from` for `to` in `text`, insisting that `from` is there. */
function swap(text: string, from: string, to: string): string {
	if (!text.includes(from)) throw new Error(`the shipped NATS config no longer has ${from}: update loopbackConfig`);
	return text.replaceAll(from, to);
}

/**
 * deploy/nats/<region>.conf as it runs on this host: each address it names (the 0.0.0.0 listeners,
 * the compose service `nats` its route dials, the *.edgehome.internal gateway names) becomes a
 * 127.0.0.1 port, and the JetStream store a temporary folder; TLS, users, cluster and gateway names
 * stay as shipped. An address it expects that is gone, or one it does not know that is left, throws:
 * a changed config is never tested half-rewritten.
 */
export function loopbackConfig(region: string, opts: LoopbackOptions): string {
	const { ports } = opts;
	let text = readFileSync(join(DEPLOY_NATS, `${region}.conf`), "utf8");
	if (opts.serverName) text = swap(text, `server_name: "nats-${region}-1"`, `server_name: "${opts.serverName}"`);
	text = swap(text, `listen: "0.0.0.0:4222"`, `listen: "127.0.0.1:${ports.client}"`);
	text = swap(text, `http: "0.0.0.0:8222"`, `http: "127.0.0.1:${ports.http}"`);
	text = swap(text, `store_dir: "/data/jetstream"`, `store_dir: "${opts.storeDir}"`);
	text = swap(text, `listen: "0.0.0.0:6222"`, `listen: "127.0.0.1:${ports.cluster}"`);
	text = swap(text, "nats-route://nats:6222", `nats-route://127.0.0.1:${opts.routeTo ?? ports.cluster}`);
	text = swap(text, `listen: "0.0.0.0:7222"`, `listen: "127.0.0.1:${ports.gateway}"`);
	text = swap(text, `advertise: "nats.${region}.edgehome.internal:7222"`, `advertise: "127.0.0.1:${ports.gateway}"`);
	text = text.replaceAll(/nats:\/\/nats\.([a-z0-9-]+)\.edgehome\.internal:7222/g, (_, name: string) => {
		const port = opts.gateways[name];
		if (port === undefined) throw new Error(`no loopback port for the gateway of ${name}`);
		return `nats://127.0.0.1:${port}`;
	});
	const settings = text.replaceAll(/^\s*#.*$/gm, "").replaceAll(/127\.0\.0\.1:[0-9]+/g, "");
	const left = /0\.0\.0\.0|edgehome\.internal|:[0-9]+222\b/.exec(settings);
	if (left) throw new Error(`the shipped NATS config of ${region} names an address loopbackConfig does not rewrite: ${left[0]}`);
	return text;
}

/** A nats-server running a shipped config (loopbackConfig) in a working directory laid out as in the stacks. */
export interface ShippedServer {
	readonly region: string;
	readonly url: string;
	readonly ports: ShippedPorts;
	readonly caFile: string;
	readonly passwords: ReturnType<typeof natsPasswords>;
	/** What the server has logged so far. */
	log(): string;
	/** GET on the monitoring port (/varz, /gatewayz, /routez, /connz …), as JSON. */
	monitor<T>(path: string): Promise<T>;
	stop(): Promise<void>;
}

export interface ShippedServerOptions extends LoopbackOptions {
	region: string;
	/** Folder of make-certs.sh's output whose <region> certificates the server uses. */
	certs: string;
	/** The server's working directory is <root>/<region>. */
	root: string;
}

export async function startShippedServer(opts: ShippedServerOptions): Promise<ShippedServer> {
	const dir = serverDir(opts.root, opts.region, opts.certs);
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
		url: `nats://127.0.0.1:${opts.ports.client}`,
		ports: opts.ports,
		caFile: join(dir, "certs", "ca.crt"),
		passwords,
		log: () => readFileSync(logFile, "utf8"),
		async monitor<T>(path: string) {
			const res = await fetch(`http://127.0.0.1:${opts.ports.http}${path}`, { signal: AbortSignal.timeout(2000) });
			if (!res.ok) throw new Error(`${path} on ${opts.region}'s server answered ${res.status}`);
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
			throw new Error(`the shipped NATS server of ${opts.region} did not start:\n${server.log()}`);
		}
		await sleep(100);
	}
	return server;
}

/** The regions named by the shipped configs, each a one-server cluster gatewayed to the others. */
export interface SecureSupercluster {
	readonly servers: Record<string, ShippedServer>;
	/** The port each region of the shipped gateway lists is dialed at; nothing listens there for a region not started. */
	readonly gateways: Record<string, number>;
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
 * The shipped configs of `running` (at least two: JetStream needs a second region to elect its
 * leader), with certificates from make-certs.sh, started on loopback; resolves once every server
 * has an outbound gateway to every other and JetStream has its leader.
 */
export async function startSecureSupercluster(running: string[], all: string[], readyMs = 20_000): Promise<SecureSupercluster> {
	const root = mkdtempSync(join(tmpdir(), "edgehome-secure-supercluster-"));
	makeCertificates(join(root, "pki"), running);
	const ports = await distinctPorts(all.length + running.length * 3);
	const gateways = Object.fromEntries(all.map((region, i) => [region, ports[i]!]));
	const servers: Record<string, ShippedServer> = {};
	const cluster: SecureSupercluster = {
		servers,
		gateways,
		root,
		async stop() {
			await Promise.all(Object.values(servers).map(s => s.stop()));
			rmSync(root, { recursive: true, force: true });
		}
	};
	try {
		for (const [i, region] of running.entries()) {
			const [client, http, cluster] = ports.slice(all.length + i * 3, all.length + i * 3 + 3) as [number, number, number];
			const storeDir = join(root, `${region}-js`);
			mkdirSync(storeDir);
			servers[region] = await startShippedServer({
				region,
				root,
				certs: join(root, "pki"),
				ports: { client, http, cluster, gateway: gateways[region]! },
				gateways,
				storeDir
			});
		}
		const deadline = Date.now() + readyMs;
		for (const server of Object.values(servers)) {
			const others = running.filter(r => r !== server.region);
			for (;;) {
				const gw = await server.monitor<{ outbound_gateways?: Record<string, unknown> }>("/gatewayz").catch(() => ({}) as { outbound_gateways?: undefined });
				const js = await server.monitor<{ meta_cluster?: { leader?: string } }>("/jsz").catch(() => ({}) as { meta_cluster?: undefined });
				if (others.every(r => r in (gw.outbound_gateways ?? {})) && js.meta_cluster?.leader) break;
				if (Date.now() > deadline) throw new Error(`secure supercluster not ready within ${readyMs} ms at ${server.region}:\n${server.log()}`);
				await sleep(100);
			}
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
