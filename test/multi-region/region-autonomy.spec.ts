import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { ServiceBroker } from "moleculer";
import { connect } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { brokerConfig } from "../../app/broker.config.ts";
import { userKey } from "../../regions/directory/entries.ts";
import type { NatsKvDirectoryStore } from "../../regions/directory/nats-kv-store.ts";
import { openNatsKvDirectory } from "../../regions/directory/nats-kv-store.ts";
import { findRegion, loadRegions } from "../../regions/loader.ts";
import type { EdgeTopology } from "../harness/edge-topology.ts";
import { startEdgeTopology } from "../harness/edge-topology.ts";
import { runId } from "../harness/real-servers.ts";
import { failureOf, timed, within } from "../harness/waiting.ts";

const NOTES_NODE = fileURLToPath(new URL("../harness/notes-node.ts", import.meta.url));
const REGIONS = ["cn-east", "ap-south", "eu-central"];
/** A country each region serves, so that registration homes a user there. */
const COUNTRY: Record<string, string> = { "cn-east": "JP", "ap-south": "SG", "eu-central": "DE" };
const ALONE = "cn-east";
const USERS_PER_REGION = 4;
/** The directory's bound on every operation (the launcher's EDGEHOME_DIRECTORY_TIMEOUT_MS default). */
const DIRECTORY_TIMEOUT_MS = 2000;

interface RegionNodeProcess {
	proc: ChildProcess;
	nodeID: string;
	/** From spawn to its "ready" line. */
	readyMs: number;
}

/**
 * Region autonomy on the production topology (deploy/README.md, "Topology"): three regions, each an
 * edge server with its own JetStream domain, joined as leaf nodes to a three-server hub holding the
 * directory's origin. Each region's node is a process of its own on a SQLite file, started and
 * SIGKILLed by the test; the test calls it through a broker of the region's namespace.
 */
describe("region autonomy: hub and edge servers, one node process per region", () => {
	const run = runId();
	const bucket = `autonomy-${run}`;
	const namespacePrefix = `t${run}-`;
	const blindIndexKey = randomBytes(32);
	const dataDir = mkdtempSync(join(tmpdir(), "edgehome-autonomy-"));
	const regions = loadRegions();
	let topology: EdgeTopology;
	const nodes: Record<string, RegionNodeProcess> = {};
	const clients: Record<string, ServiceBroker> = {};
	/** Every user whose registration was acknowledged, with the home it was given. */
	const homes = new Map<string, string>();
	let seq = 0;
	/** The region lost for good: the one whose hub server leads the origin bucket, the worst case for the writes' recovery. */
	let lost = "";
	/** The surviving regions: one keeps writing through the loss, the other checks from outside. */
	let writer = "";
	let other = "";

	function startNode(region: string): Promise<RegionNodeProcess> {
		const started = Date.now();
		const proc = spawn(process.execPath, [NOTES_NODE], {
			env: {
				...process.env,
				NOTES_NODE_REGION: region,
				NOTES_NODE_NATS_URL: topology.urls[region]!,
				NOTES_NODE_BUCKET: bucket,
				NOTES_NODE_HUB_REPLICAS: String(topology.placement(region).originReplicas),
				NOTES_NODE_SQL: `sqlite:${join(dataDir, `${region}.sqlite`)}`,
				EDGEHOME_NAMESPACE_PREFIX: namespacePrefix,
				EDGEHOME_BLIND_INDEX_KEY: blindIndexKey.toString("base64")
			},
			stdio: ["pipe", "pipe", "pipe"]
		});
		let stderr = "";
		proc.stderr!.on("data", d => (stderr += d));
		const lines: string[] = [];
		return new Promise((resolve, reject) => {
			const timer = setTimeout(() => reject(new Error(`${region} node not ready within 30 s: ${stderr}`)), 30_000);
			createInterface({ input: proc.stdout! }).on("line", line => {
				if (!line.startsWith("ready ")) return void lines.push(line);
				clearTimeout(timer);
				resolve({ proc, nodeID: line.slice("ready ".length), readyMs: Date.now() - started });
			});
			proc.once("exit", code => {
				clearTimeout(timer);
				reject(new Error(`${region} node exited (${code}) before it was ready: ${stderr}${lines.join("\n")}`));
			});
		});
	}

	async function killNode(region: string): Promise<void> {
		const node = nodes[region];
		delete nodes[region];
		if (!node || node.proc.exitCode !== null || node.proc.signalCode !== null) return;
		const gone = new Promise(resolve => node.proc.once("exit", resolve));
		node.proc.kill("SIGKILL");
		await gone;
	}

	/** A broker of `region`'s namespace, on the edge server of `via`: from another region, its calls cross the hub as a link's do. */
	async function startClient(region: string, via = region): Promise<ServiceBroker> {
		const env = { EDGEHOME_NATS_URL: topology.urls[via]!, EDGEHOME_NAMESPACE_PREFIX: namespacePrefix, EDGEHOME_METRICS_PORT: "off", EDGEHOME_CACHER: "off" };
		const broker = new ServiceBroker({ ...brokerConfig({ region: findRegion(regions, region), group: "client", transport: "nats", env }), logger: false });
		await broker.start();
		return broker;
	}

	const call = <T>(region: string, action: string, params: object, timeout = 10_000) => clients[region]!.call<T, object>(action, params, { timeout });

	async function register(region: string): Promise<string> {
		const { userId } = await call<{ userId: string }>(region, "sv-region.register", {
			identities: [{ kind: "username", value: `autonomy-${++seq}-${run}` }],
			country: COUNTRY[region]
		});
		homes.set(userId, region);
		return userId;
	}

	/** Every region's node knows every acknowledged user at the home it was given (its mirror and cache caught up). */
	async function everyRegionKnowsEveryHome(inRegions: string[], ms: number): Promise<number> {
		return within(async () => {
			for (const region of inRegions)
				for (const [userId, home] of homes) {
					const found = await call<{ region: string }>(region, "sv-region.lookup", { userId }).catch(() => undefined);
					if (found?.region !== home) return false;
				}
			return true;
		}, ms);
	}

	const usersOf = (region: string) => [...homes].filter(([, home]) => home === region).map(([userId]) => userId);

	/** The test's own view of the origin, through a region's edge server: authoritative reads only. */
	async function openOriginReader(region: string): Promise<NatsKvDirectoryStore> {
		return openNatsKvDirectory({ servers: topology.urls[region]!, bucket, ...topology.placement(region), name: `autonomy-reader-${region}` });
	}

	beforeAll(async () => {
		topology = await startEdgeTopology(REGIONS);
		const started = await Promise.all(REGIONS.map(startNode));
		for (const [i, region] of REGIONS.entries()) nodes[region] = started[i]!;
		for (const region of REGIONS) clients[region] = await startClient(region);
		await within(async () => {
			for (const region of REGIONS) {
				const services = clients[region]!.registry.getServiceList({ onlyAvailable: true }).map(s => s.name);
				if (!services.includes("sv-region") || !services.includes("notes")) return false;
			}
			return true;
		}, 15_000);
		for (const region of REGIONS)
			for (let i = 0; i < USERS_PER_REGION; i++) {
				const userId = await register(region);
				await call(region, "notes.add", { userId, text: "before" });
			}
		const ms = await everyRegionKnowsEveryHome(REGIONS, 15_000);
		console.log(`${homes.size} users registered; every region resolved every home ${ms} ms after the last registration`);
	}, 60_000);

	afterAll(async () => {
		await Promise.allSettled(Object.values(clients).map(c => c.stop()));
		await Promise.allSettled(REGIONS.map(killNode));
		await topology?.stop();
		rmSync(dataDir, { recursive: true, force: true });
	});

	it("cut off (every other region's edge and hub server killed): its node restarts, is ready within 10 s, serves its users; global writes fail fast and retryably", async () => {
		await Promise.all(REGIONS.filter(r => r !== ALONE).map(r => topology.kill(r)));
		// The region's own site restarts too: its edge server and its node, while the others are gone.
		await killNode(ALONE);
		await topology.killEdge(ALONE);
		await topology.restartEdge(ALONE);
		nodes[ALONE] = await startNode(ALONE);
		console.log(`cut off: ${ALONE}'s node process was ready ${nodes[ALONE].readyMs} ms after its start`);
		expect(nodes[ALONE].readyMs).toBeLessThan(10_000);

		await within(() => clients[ALONE]!.registry.getServiceList({ onlyAvailable: true }).some(s => s.name === "notes"), 10_000);
		for (const userId of usersOf(ALONE)) {
			const notes = await call<{ text: string }[]>(ALONE, "notes.list", { userId });
			expect(notes.map(n => n.text)).toEqual(["before"]);
			expect(await call(ALONE, "notes.add", { userId, text: "cut off" })).toMatchObject({ region: ALONE });
			expect((await call<{ text: string }[]>(ALONE, "notes.list", { userId })).map(n => n.text)).toEqual(["before", "cut off"]);
		}
		// Its mirror still routes: another region's user is known to live there (and cannot be reached).
		const elsewhere = usersOf("ap-south")[0]!;
		expect(await call(ALONE, "sv-region.lookup", { userId: elsewhere })).toMatchObject({ region: "ap-south" });

		const registration = await timed(
			call(ALONE, "sv-region.register", { identities: [{ kind: "username", value: `autonomy-cut-${run}` }], country: COUNTRY[ALONE] })
		);
		const move = await timed(call(ALONE, "sv-region.move", { userId: usersOf(ALONE)[0]!, to: "ap-south" }));
		console.log(
			`cut off: registration failed in ${registration.ms} ms with ${(registration.result as Error).name}, a move in ${move.ms} ms with ${(move.result as Error).name}`
		);
		// Registration needs the origin; a move needs it and its target region (which of the two it finds gone first may vary).
		expect(registration.result).toMatchObject({ type: "DIRECTORY_UNAVAILABLE", code: 503 });
		expect(["DIRECTORY_UNAVAILABLE", "REGION_UNAVAILABLE"]).toContain((move.result as { type?: string }).type);
		for (const { ms, result } of [registration, move]) {
			expect(result).toMatchObject({ code: 503 });
			expect((result as { data: { retryAfter: number } }).data.retryAfter).toBeGreaterThan(0);
			expect(ms).toBeLessThan(DIRECTORY_TIMEOUT_MS + 1500);
		}

		// The links come back: the others' servers restart, and registration works again without a manual step.
		await Promise.all(REGIONS.filter(r => r !== ALONE).map(r => topology.restart(r)));
		const ms = await within(async () => (await failureOf(register(ALONE))).type === "(succeeded)", 20_000);
		console.log(`healed: registration in ${ALONE} worked again ${ms} ms after the other regions' servers were back`);
		const caughtUp = await everyRegionKnowsEveryHome(REGIONS, 20_000);
		console.log(`healed: every region resolved all ${homes.size} homes, unchanged, ${caughtUp} ms later`);
		// Request/reply and discovery across the hub again: ap-south's namespace, reached from cn-east's edge server.
		const across = await startClient("ap-south", ALONE);
		try {
			await within(() => across.registry.getServiceList({ onlyAvailable: true }).some(s => s.name === "notes"), 10_000);
			for (const userId of usersOf("ap-south"))
				expect((await across.call<{ text: string }[], object>("notes.list", { userId })).map(n => n.text)).toEqual(["before"]);
		} finally {
			await across.stop();
		}
	}, 60_000);

	it("one region lost for good (edge and hub SIGKILLed, storage deleted): no acknowledged entry lost, writes resume within 30 s, the others serve their users", async () => {
		const nc = await connect({ servers: topology.urls[ALONE]! });
		try {
			const leader = (await (await nc.jetstreamManager({ domain: "hub" })).streams.info(`KV_${bucket}`)).cluster?.leader;
			lost = REGIONS.find(r => leader === `hub-${r}`)!;
		} finally {
			await nc.close();
		}
		expect(REGIONS).toContain(lost);
		[writer, other] = REGIONS.filter(r => r !== lost) as [string, string];
		// Registrations keep coming from a surviving region while the region is lost; each acknowledged one must survive.
		let writing = true;
		let acknowledged = 0;
		let refused = 0;
		/** When the region's servers went, and when a write started after that was first acknowledged. */
		let lostAt = Number.POSITIVE_INFINITY;
		let resumedAt: number | undefined;
		const writes = (async () => {
			while (writing) {
				const startedAt = Date.now();
				const result = await failureOf(register(writer));
				if (result.type !== "(succeeded)") refused++;
				else {
					acknowledged++;
					if (startedAt >= lostAt) resumedAt ??= Date.now();
				}
				await new Promise(r => setTimeout(r, 50));
			}
		})();
		await within(() => acknowledged >= 5, 10_000);
		console.log(`losing ${lost}, whose hub server leads the origin bucket`);
		await killNode(lost);
		lostAt = Date.now();
		await topology.kill(lost);
		topology.wipe(lost);
		await within(() => resumedAt !== undefined, 30_000);
		const resumedMs = resumedAt! - lostAt;
		writing = false;
		await writes;
		console.log(
			`${lost} lost: directory writes resumed ${resumedMs} ms after the loss (${refused} refused meanwhile, ${acknowledged} acknowledged in all); RTO bound 30 s`
		);
		expect(resumedMs).toBeLessThan(30_000);
		await clients[lost]!.stop();
		delete clients[lost];

		const origin = await openOriginReader(writer);
		try {
			let missing = 0;
			for (const [userId, home] of homes) {
				const entry = await origin.get<{ region: string }>(userKey(userId), { authoritative: true });
				if (entry?.value.region !== home) missing++;
			}
			console.log(`${lost} lost: ${homes.size - missing} of ${homes.size} acknowledged users found in the origin at their home (RPO 0)`);
			expect(missing).toBe(0);
		} finally {
			await origin.close();
		}
		for (const region of REGIONS.filter(r => r !== lost))
			for (const userId of usersOf(region).slice(0, USERS_PER_REGION)) {
				expect(await call(region, "notes.add", { userId, text: "after loss" })).toMatchObject({ region });
				expect(await call(region === writer ? other : writer, "sv-region.lookup", { userId })).toMatchObject({ region });
			}
	}, 60_000);

	it("heal: the lost region's servers come back empty; its mirror, the hub replica and every cache converge with no manual step, and no home changed", async () => {
		await topology.restart(lost);
		nodes[lost] = await startNode(lost);
		clients[lost] = await startClient(lost);
		console.log(`heal: ${lost}'s node was ready ${nodes[lost]!.readyMs} ms after its start on a new, empty edge server`);
		const ms = await everyRegionKnowsEveryHome(REGIONS, 30_000);
		console.log(`heal: every region, ${lost} included, resolved all ${homes.size} homes, unchanged, within ${ms} ms`);

		const nc = await connect({ servers: topology.urls[lost]! });
		try {
			const hub = await nc.jetstreamManager({ domain: "hub" });
			const local = await nc.jetstreamManager();
			await within(async () => {
				const origin = await hub.streams.info(`KV_${bucket}`);
				const mirror = await local.streams.info(`KV_${bucket}-${lost}`);
				const replicas = origin.cluster?.replicas ?? [];
				return mirror.state.last_seq === origin.state.last_seq && replicas.length === 2 && replicas.every(r => r.current);
			}, 20_000);
		} finally {
			await nc.close();
		}
		// Its users are served at their home again, from another region's edge server too.
		const across = await startClient(lost, writer);
		try {
			await within(() => across.registry.getServiceList({ onlyAvailable: true }).some(s => s.name === "notes"), 10_000);
			for (const userId of usersOf(lost)) {
				expect(await across.call("notes.add", { userId, text: "healed" })).toMatchObject({ region: lost });
				expect(await call(writer, "sv-region.lookup", { userId })).toMatchObject({ region: lost });
			}
		} finally {
			await across.stop();
		}
		expect(await failureOf(register(lost))).toMatchObject({ type: "(succeeded)" });
	}, 60_000);
});
