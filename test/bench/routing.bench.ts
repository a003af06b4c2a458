import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { createConnection } from "mysql2/promise";
import { newUserId } from "../../regions/directory/entries.ts";
import { HomeCache } from "../../regions/directory/home-cache.ts";
import { startEdgeTopology } from "../harness/edge-topology.ts";
import { startKvNode } from "../harness/kv-node.ts";
import { cleanupRealStores, realStores, runId } from "../harness/real-servers.ts";
import type { Call, Figures } from "./measure.ts";
import {
	alternate,
	IN_FLIGHT,
	interleavedLatencies,
	READY_TIMEOUT_MS,
	round,
	startServer,
	THROUGHPUT_MS,
	table,
	throughput,
	WARMUP_MS,
	withCleanups
} from "./measure.ts";
import type { WriteKind } from "./routing-server.ts";
import { WRITES_TABLE } from "./routing-server.ts";

/**
 * `npm run bench:routing`: what home routing costs. (a) the same remote action plain and with
 * `home:` for a user of this region; (b) a user homed in the other region of a 2-region
 * supercluster; (c) a cached directory lookup; (d) the heap of a 1M-entry lookup cache;
 * (e) a one-row INSERT into the region's MariaDB, autocommitted by a plain action and committed
 * through the ownership fence by a home-routed write, for a user of this region.
 * Ends with one JSON line.
 */

const SERVER_SCRIPT = join(import.meta.dirname, "routing-server.ts");

type Latency = { p50Ms: number; p99Ms: number };
const ROUNDS = 3;
const LOOKUPS = 200_000;
const CACHE_ENTRIES = 1_000_000;

async function lookupLatency(lookup: () => Promise<unknown>): Promise<{ p50Us: number; p99Us: number }> {
	for (let i = 0; i < 10_000; i++) await lookup();
	const ns: number[] = new Array(LOOKUPS);
	for (let i = 0; i < LOOKUPS; i++) {
		const start = process.hrtime.bigint();
		await lookup();
		ns[i] = Number(process.hrtime.bigint() - start);
	}
	ns.sort((x, y) => x - y);
	return { p50Us: ns[Math.floor(LOOKUPS * 0.5)]! / 1000, p99Us: ns[Math.floor(LOOKUPS * 0.99)]! / 1000 };
}

function cacheHeapMb(): number {
	const gc = (globalThis as { gc?: () => void }).gc;
	if (!gc) throw new Error("run with --expose-gc (npm run bench:routing does)");
	gc();
	const before = process.memoryUsage().heapUsed;
	const cache = new HomeCache(["cn-east", "ap-south", "eu-central"], CACHE_ENTRIES);
	// The ids are made here, so the figure includes the key strings the cache keeps alive.
	for (let i = 0; i < CACHE_ENTRIES; i++) cache.set(newUserId(), { region: "eu-central", epoch: 1 + (i % 7), state: "active", pinned: i % 2 === 0 });
	gc();
	const after = process.memoryUsage().heapUsed;
	if (cache.size !== CACHE_ENTRIES) throw new Error("cache lost entries");
	return (after - before) / 1024 / 1024;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
	const deadline = Date.now() + READY_TIMEOUT_MS;
	for (;;) {
		const value = await probe().catch(() => undefined);
		if (value !== undefined) return value;
		if (Date.now() > deadline) throw new Error(`${what} not seen within ${READY_TIMEOUT_MS} ms`);
		await new Promise(r => setTimeout(r, 100));
	}
}

/** Rows of each kind in the run's cn-east table: what the writes really left behind. */
async function writtenRows(url: string): Promise<Record<WriteKind, number>> {
	const conn = await createConnection({ uri: url });
	try {
		const [rows] = await conn.query(`select kind, count(*) as n from \`${WRITES_TABLE}\` group by kind`);
		const counts: Record<WriteKind, number> = { plain: 0, homed: 0 };
		for (const row of rows as { kind: WriteKind; n: number | string }[]) counts[row.kind] = Number(row.n);
		return counts;
	} finally {
		await conn.end();
	}
}

async function main(): Promise<void> {
	const heapMb = cacheHeapMb();
	const figures = await withCleanups(async cleanups => {
		const cluster = await startEdgeTopology(["cn-east", "eu-central"]);
		cleanups.push(cluster.stop);
		const run = runId();
		const namespacePrefix = `bench-${run}-`;
		const bucket = `bench-directory-${run}`;
		const key = randomBytes(32);
		const env = { ...process.env, EDGEHOME_BLIND_INDEX_KEY: key.toString("base64") };
		const cn = cluster.urls["cn-east"]!;
		const eu = cluster.urls["eu-central"]!;
		const replicas = String(cluster.placement("cn-east").originReplicas);
		const stores = { "cn-east": realStores(run, "cn-east"), "eu-central": realStores(run, "eu-central") };
		// Pushed before the servers, so it runs after they have stopped.
		cleanups.push(async () => {
			for (const settings of Object.values(stores)) await cleanupRealStores(settings);
		});
		await startServer(cleanups, SERVER_SCRIPT, ["cn-east", cn, bucket, namespacePrefix, run, replicas], env);
		await startServer(cleanups, SERVER_SCRIPT, ["eu-central", eu, bucket, namespacePrefix, run, replicas], env);
		const caller = await startKvNode({ region: "cn-east", natsUrl: cn, bucket, hubReplicas: Number(replicas), namespacePrefix, blindIndexKey: key });
		cleanups.push(caller.stop);
		const { broker, links, directory } = caller.node;
		await broker.waitForServices(["profile", "journal"], READY_TIMEOUT_MS, 50);

		const register = (country: string) =>
			broker.call<{ userId: string }, unknown>("sv-region.register", { identities: [{ kind: "username", value: `bench-${country}-${run}` }], country });
		const local = (await register("JP")).userId;
		const remote = (await register("GB")).userId;
		// The eu-central node reads its own mirror: wait until the new user has reached it.
		await until("user in eu-central's mirror", () => links.call("eu-central", "sv-region.lookup", { userId: remote }));

		const plain: Call = () => broker.call("profile.plain", { userId: local });
		const homed: Call = () => broker.call("profile.homed", { userId: local });
		const away: Call = () => broker.call("profile.homed", { userId: remote });

		const [plainRate, homedRate] = await alternate(plain, homed, throughput, { warmupMs: WARMUP_MS, windowMs: THROUGHPUT_MS, rounds: ROUNDS });
		await throughput(away, WARMUP_MS);
		const awayRate = await throughput(away, THROUGHPUT_MS);
		// The same forwarded call without routing: a bare link call across the gateway, for scale.
		const bareLink: Call = () => links.call("eu-central", "profile.plain", { userId: remote });
		const [plainLat, homedLat, awayLat, linkLat] = (await interleavedLatencies([plain, homed, away, bareLink])) as [Latency, Latency, Latency, Latency];
		const lookup = await lookupLatency(() => directory.home(local));
		// The home side checks ownership on every call: its cache must be answering those checks.
		const homeSide = await links.call<{ cache: { hitRate: number } }>("eu-central", "sv-region.stats", {});

		// (e) Every acknowledged write is counted, so the table can prove the bench wrote what it measured.
		const acked: Record<WriteKind, number> = { plain: 0, homed: 0 };
		const write =
			(kind: WriteKind, action: string): Call =>
			() =>
				broker.call(action, { userId: local }).then(() => void acked[kind]++);
		const plainWrite = write("plain", "journal.plainWrite");
		const homedWrite = write("homed", "journal.homedWrite");
		const [plainWriteRate, homedWriteRate] = await alternate(plainWrite, homedWrite, throughput, {
			warmupMs: WARMUP_MS,
			windowMs: THROUGHPUT_MS,
			rounds: ROUNDS
		});
		const [plainWriteLat, homedWriteLat] = (await interleavedLatencies([plainWrite, homedWrite])) as [Latency, Latency];
		const rows = await writtenRows(stores["cn-east"].sql);
		if (rows.plain !== acked.plain || rows.homed !== acked.homed)
			throw new Error(
				`rows in ${WRITES_TABLE} (plain ${rows.plain}, homed ${rows.homed}) differ from acknowledged writes (plain ${acked.plain}, homed ${acked.homed})`
			);
		return {
			plain: { callsPerSec: plainRate, ...plainLat },
			homed: { callsPerSec: homedRate, ...homedLat },
			otherRegion: { callsPerSec: awayRate, ...awayLat },
			bareLink: linkLat,
			lookup,
			homeSideHitRate: homeSide.cache.hitRate,
			plainWrite: { callsPerSec: plainWriteRate, ...plainWriteLat },
			homedWrite: { callsPerSec: homedWriteRate, ...homedWriteLat },
			writeRows: { acknowledged: acked.plain + acked.homed, inTable: rows.plain + rows.homed }
		};
	});

	const ratios = {
		homedOverPlainThroughput: figures.homed.callsPerSec / figures.plain.callsPerSec,
		otherRegionOverPlainP50: figures.otherRegion.p50Ms / figures.plain.p50Ms,
		bareLinkOverPlainP50: figures.bareLink.p50Ms / figures.plain.p50Ms,
		homedOverPlainWriteThroughput: figures.homedWrite.callsPerSec / figures.plainWrite.callsPerSec,
		homedOverPlainWriteP50: figures.homedWrite.p50Ms / figures.plainWrite.p50Ms
	};
	const rows: Record<string, Figures> = {
		"plain (same region, remote node)": figures.plain,
		"home: user of this region": figures.homed,
		"home: user of the other region": figures.otherRegion,
		"(e) plain write, INSERT autocommit": figures.plainWrite,
		"(e) home: write, fenced transaction": figures.homedWrite
	};
	console.log(`routing bench: ${IN_FLIGHT} in flight, ${ROUNDS} alternating ${THROUGHPUT_MS / 1000} s windows for (a) and (e)\n`);
	console.log(table(rows));
	console.log(`\n(a) home/plain throughput: x${ratios.homedOverPlainThroughput.toFixed(3)} (goal >= 0.9)`);
	console.log(`(b) other-region p50 / same-region remote p50: x${ratios.otherRegionOverPlainP50.toFixed(2)} (goal <= 1.6)`);
	console.log(
		`    bare link call across the gateway (no routing): p50 ${figures.bareLink.p50Ms.toFixed(3)} ms, x${ratios.bareLinkOverPlainP50.toFixed(2)} of the same-region call`
	);
	console.log(`(c) cached lookup: p50 ${figures.lookup.p50Us.toFixed(2)} us, p99 ${figures.lookup.p99Us.toFixed(2)} us (goal p50 <= 2 us)`);
	console.log(`    home-side ownership checks answered from the cache: ${(figures.homeSideHitRate * 100).toFixed(2)}%`);
	console.log(`(d) lookup cache at ${CACHE_ENTRIES.toLocaleString("en-US")} entries: ${heapMb.toFixed(1)} MB of heap (goal <= 150 MB)`);
	console.log(
		`(e) homedWrite/plainWrite throughput: x${ratios.homedOverPlainWriteThroughput.toFixed(3)} (goal >= 0.9); p50 x${ratios.homedOverPlainWriteP50.toFixed(2)}`
	);
	console.log(`    rows in the table: ${figures.writeRows.inTable} = acknowledged writes: ${figures.writeRows.acknowledged}\n`);
	const f = (x: Figures) => ({ callsPerSec: Math.round(x.callsPerSec), p50Ms: round(x.p50Ms, 4), p99Ms: round(x.p99Ms, 4) });
	console.log(
		JSON.stringify({
			plain: f(figures.plain),
			homed: f(figures.homed),
			otherRegion: f(figures.otherRegion),
			bareLink: { p50Ms: round(figures.bareLink.p50Ms, 4), p99Ms: round(figures.bareLink.p99Ms, 4) },
			lookup: { p50Us: round(figures.lookup.p50Us, 3), p99Us: round(figures.lookup.p99Us, 3) },
			cacheHeapMbAt1M: round(heapMb, 1),
			plainWrite: f(figures.plainWrite),
			homedWrite: f(figures.homedWrite),
			writeRows: figures.writeRows,
			ratios: Object.fromEntries(Object.entries(ratios).map(([k, v]) => [k, round(v, 4)]))
		})
	);
}

main().catch(err => {
	console.error(err);
	process.exitCode = 1;
});
