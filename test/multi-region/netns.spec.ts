import type { ChildProcess } from "node:child_process";
import { execFileSync, spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRegionNetwork, netnsAvailable, type RegionNetwork } from "../harness/netns.ts";
import { within } from "../harness/waiting.ts";

const NATS_SERVER = process.env.EDGEHOME_TEST_NATS_SERVER ?? "nats-server";
// Each namespace has its own port space, so every region's server can use the same ports.
const CLIENT_PORT = 4222;
const ROUTE_PORT = 6222;
const HTTP_PORT = 8222;
const REGIONS = ["a", "b", "c"];

const available = await netnsAvailable();

describe.skipIf(!available)("regions in network namespaces", () => {
	let net: RegionNetwork;
	let dir: string;
	const servers = new Map<string, ChildProcess>();

	beforeAll(async () => {
		net = await createRegionNetwork(REGIONS);
		dir = mkdtempSync(join(tmpdir(), "edgehome-netns-"));
		for (const region of REGIONS) servers.set(region, startServer(net, dir, region));
		await within(() => allRoutesUp(net), 15_000).catch(err => {
			throw new Error(`routes between ${REGIONS.join(", ")} not up: ${err.message}\n${logs(dir)}`);
		});
	});

	afterAll(async () => {
		await net?.destroy();
		if (dir) rmSync(dir, { recursive: true, force: true });
	});

	it("cut(a) leaves a alone but alive and serving its clients; heal(a) brings its routes back", async () => {
		await net.cut("a");
		const dropped = await within(() => routesAre(net, { a: [], b: ["c"], c: ["b"] }), 10_000);
		console.log(`routes dropped ${dropped} ms after cut(a)`);
		for (const [region, proc] of servers) expect(alive(proc), `server of ${region}`).toBe(true);
		expect((await routez(net, "a")).num_routes).toBe(0);

		const nc = await connect({ servers: `nats://${net.mgmtAddress("a")}:${CLIENT_PORT}`, timeout: 2000 });
		try {
			const sub = nc.subscribe("local.echo", { max: 1 });
			nc.publish("local.echo", "still here");
			for await (const msg of sub) expect(msg.string()).toBe("still here");
		} finally {
			await nc.close();
		}

		await net.heal("a");
		console.log(`routes back ${await within(() => allRoutesUp(net), 10_000)} ms after heal(a)`);
	});

	it("cutBetween(b, c) drops only the b–c route", async () => {
		await net.cutBetween("b", "c");
		const dropped = await within(() => routesAre(net, { a: ["b", "c"], b: ["a"], c: ["a"] }), 10_000);
		console.log(`b–c route dropped ${dropped} ms after cutBetween(b, c)`);
		await net.healBetween("b", "c");
		console.log(`b–c route back ${await within(() => allRoutesUp(net), 10_000)} ms after healBetween(b, c)`);
	});

	it("destroy() kills the processes inside and removes every namespace and interface", async () => {
		const names = REGIONS.map(r => net.namespaceOf(r));
		await net.destroy();
		await net.destroy();
		// destroy() returns once the processes are gone; this process learns of their exit a moment later.
		await within(() => [...servers.values()].every(proc => !alive(proc)), 2000);
		const namespaces = ipOutput("netns", "list");
		const links = ipOutput("-o", "link", "show");
		for (const name of names) expect(namespaces).not.toContain(name);
		const hub = names[0]!.replace(/-a$/, "");
		expect(namespaces).not.toContain(hub);
		expect(links).not.toContain(hub);
	});
});

describe.skipIf(!available)("region network cleanup", () => {
	it("a test process that dies without destroy() takes its namespaces and their processes with it", async () => {
		// A separate process makes a network, starts a process in it, then is SIGKILLed as a crashed test worker would be.
		const script = [
			`import { spawn } from "node:child_process";`,
			`import { createRegionNetwork } from ${JSON.stringify(new URL("../harness/netns.ts", import.meta.url).pathname)};`,
			`const net = await createRegionNetwork(["x", "y"]);`,
			`const [cmd, ...prefix] = net.spawnPrefix("x");`,
			`const inside = spawn(cmd, [...prefix, "sleep", "600"], { stdio: "ignore" });`,
			`await new Promise(r => setTimeout(r, 300));`,
			`console.log(JSON.stringify({ namespaces: ["x", "y"].map(r => net.namespaceOf(r)), inside: inside.pid }));`,
			`setInterval(() => {}, 1000);`
		].join("\n");
		const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
		const line = await new Promise<string>((resolve, reject) => {
			child.stdout!.once("data", chunk => resolve(String(chunk)));
			child.once("exit", code => reject(new Error(`network maker exited with ${code}`)));
		});
		const { namespaces, inside } = JSON.parse(line) as { namespaces: string[]; inside: number };
		expect(ipOutput("netns", "list")).toContain(namespaces[0]);
		expect(running(inside)).toBe(true);

		child.kill("SIGKILL");
		const gone = await within(() => !namespaces.some(ns => ipOutput("netns", "list").includes(ns)), 10_000);
		console.log(`namespaces of a killed test process gone ${gone} ms later`);
		expect(running(inside)).toBe(false);
	});

	it("a new network sweeps the namespaces and links an earlier run left behind", async () => {
		const exited = spawn("true");
		await new Promise(resolve => exited.once("exit", resolve));
		const leftover = `eh${exited.pid}_0`;
		execFileSync("ip", ["netns", "add", `${leftover}-x`]);
		execFileSync("ip", ["link", "add", `${leftover}m0`, "type", "veth", "peer", "name", "mgmt", "netns", `${leftover}-x`]);

		const net = await createRegionNetwork(["x", "y"]);
		try {
			expect(ipOutput("netns", "list")).not.toContain(leftover);
			expect(ipOutput("-o", "link", "show")).not.toContain(leftover);
		} finally {
			await net.destroy();
		}
	});
});

function startServer(net: RegionNetwork, dir: string, region: string): ChildProcess {
	const conf = join(dir, `${region}.conf`);
	const routes = REGIONS.filter(r => r !== region).map(r => `"nats-route://${net.wanAddress(r)}:${ROUTE_PORT}"`);
	writeFileSync(
		conf,
		[
			`server_name: "${region}"`,
			`listen: "0.0.0.0:${CLIENT_PORT}"`,
			`http: "0.0.0.0:${HTTP_PORT}"`,
			// A lost route is noticed after two unanswered one-second pings instead of minutes.
			`ping_interval: "1s"`,
			"ping_max: 2",
			`cluster { name: "netns", listen: "0.0.0.0:${ROUTE_PORT}", routes: [${routes.join(", ")}] }`,
			""
		].join("\n")
	);
	const out = openSync(join(dir, `${region}.log`), "a");
	try {
		const [cmd, ...prefix] = net.spawnPrefix(region);
		return spawn(cmd!, [...prefix, NATS_SERVER, "-c", conf], { stdio: ["ignore", out, out] });
	} finally {
		closeSync(out);
	}
}

interface Routez {
	num_routes: number;
	routes?: { ip: string }[];
}

async function routez(net: RegionNetwork, region: string): Promise<Routez> {
	const res = await fetch(`http://${net.mgmtAddress(region)}:${HTTP_PORT}/routez`, { signal: AbortSignal.timeout(1000) });
	return (await res.json()) as Routez;
}

/** The regions each server has a route to, told apart by the wan address the route comes from. */
async function routePeers(net: RegionNetwork): Promise<Record<string, string[]>> {
	const byAddress = new Map(REGIONS.map(r => [net.wanAddress(r), r]));
	const entries = await Promise.all(
		REGIONS.map(async region => {
			const { routes = [] } = await routez(net, region);
			return [region, [...new Set(routes.map(r => byAddress.get(r.ip) ?? r.ip))].sort()] as const;
		})
	);
	return Object.fromEntries(entries);
}

/** Whether each region's server has routes to exactly the regions listed for it; false while a server does not answer. */
async function routesAre(net: RegionNetwork, expected: Record<string, string[]>): Promise<boolean> {
	const peers = await routePeers(net).catch(() => undefined);
	return !!peers && REGIONS.every(region => peers[region]!.join(",") === [...expected[region]!].sort().join(","));
}

function allRoutesUp(net: RegionNetwork): Promise<boolean> {
	return routesAre(net, Object.fromEntries(REGIONS.map(region => [region, REGIONS.filter(r => r !== region)])));
}

function logs(dir: string): string {
	return REGIONS.map(
		r =>
			`--- ${r} ---\n${readFileSync(join(dir, `${r}.log`), "utf8")
				.trimEnd()
				.split("\n")
				.slice(-15)
				.join("\n")}`
	).join("\n");
}

function alive(proc: ChildProcess): boolean {
	return proc.exitCode === null && proc.signalCode === null;
}

function ipOutput(...args: string[]): string {
	return execFileSync("ip", args, { encoding: "utf8" });
}

/** Whether the process runs: neither gone nor a zombie waiting for a parent to reap it. */
function running(pid: number): boolean {
	try {
		return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
	} catch {
		return false;
	}
}
