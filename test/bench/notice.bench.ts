import { randomBytes } from "node:crypto";
import { availableParallelism, loadavg } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Connection, RowDataPacket } from "mysql2/promise";
import { createConnection } from "mysql2/promise";
import type { RunProgress } from "../../services/sv-notice/announcements.ts";
import { deleteChannelStreams } from "../harness/channels-streams.ts";
import { freePort } from "../harness/free-port.ts";
import { startKvNode } from "../harness/kv-node.ts";
import { cleanupRealStores, deleteKvBucket, REAL, realStores, runId } from "../harness/real-servers.ts";
import { benchSetting, round, startServer, withCleanups } from "./measure.ts";
import { inParallel } from "./money-load.ts";
import type { Side, SideFigures, Window } from "./notice-load.ts";
import { Arrivals, sideFigures, window } from "./notice-load.ts";
import { rawJetStream } from "./notice-raw.ts";
import { openNoticeStream } from "./notice-sse.ts";
import { addUsers, signUp } from "./notice-users.ts";

/**
 * `npm run bench:notice`: sv-notice on this machine's NATS and MariaDB, beside (a) the baseline:
 * raw JetStream on the same NATS, a publish waiting for its ack and one consumer acking each
 * message (notice-raw.ts); (b) sv-notice's sends end to end: `sv-notice.send` called from another
 * node of the region (home-routed, as a producer's call is: each user's sends go to one of the region
 * nodes), the inbox entry written in the region's MariaDB by a region node (notice-server.ts, one
 * process per core, as a region deploys them), then pushed to the user's live stream, held open by
 * this process on a node's api-www gateway (notice-sse.ts; the users' streams spread over the nodes),
 * from the call's start to the event's arrival; (c) an announcement to ANNOUNCE_USERS users of the
 * region, from the call to the region's run being done. (a) and (b) run in alternating windows at
 * the same sends in flight, so machine noise weighs on each alike (notice-load.ts), at each of two
 * levels: 64 in flight, where latencies compare, and 256, where both sides keep the machine busy. A
 * side's throughput is its best level's rate: (a) is at its peak at 64 already (beyond, its
 * publisher outruns its one consumer), while (b) at 64 leaves the cores partly idle, each send
 * waiting for a batch of its node. After (b) the inbox entries are counted against the sends
 * acknowledged, and after (c) every user's entries: a miss or a double fails the bench.
 * BENCH_NOTICE_* variables shorten or lengthen the parts (BENCH_NOTICE_NODES: the region nodes).
 * Ends with one JSON line.
 */

const SERVER_SCRIPT = join(import.meta.dirname, "notice-server.ts");
const REGION = "cn-east";
const COUNTRY = "JP";

/** Users with a live stream open, the sends of (b) going to each in turn. */
const STREAM_USERS = benchSetting("BENCH_NOTICE_STREAM_USERS", 50);
/** Sends in flight at each level, e.g. BENCH_NOTICE_IN_FLIGHT=64,256. */
const IN_FLIGHT_LEVELS = (process.env.BENCH_NOTICE_IN_FLIGHT ?? "64,256").split(",").map(Number);
/** Region node processes: one per core. */
const NODES = benchSetting("BENCH_NOTICE_NODES", availableParallelism());
const WARMUP_MS = benchSetting("BENCH_NOTICE_WARMUP_MS", 3000);
const WINDOW_MS = benchSetting("BENCH_NOTICE_WINDOW_MS", 4000);
const ROUNDS = benchSetting("BENCH_NOTICE_ROUNDS", 3);
const ANNOUNCE_USERS = benchSetting("BENCH_NOTICE_ANNOUNCE_USERS", 20_000);
/** Registrations at a time while setting up (each is a scrypt hash on the region node). */
const SIGNUP_IN_FLIGHT = 4;
const ANNOUNCE_POLL_MS = 100;
const ANNOUNCE_TIMEOUT_MS = 600_000;
const GOAL = 0.5;

/** Both sides' figures at one number of sends in flight. */
interface Level {
	inFlight: number;
	raw: SideFigures;
	notice: SideFigures;
}

const count = async (db: Connection, query: string, params: unknown[] = []) => Number((await db.query<RowDataPacket[]>(query, params))[0][0]!.n);

function line(name: string, f: SideFigures): string {
	return `${name.padEnd(58)} ${Math.round(f.callsPerSec).toLocaleString("en-US").padStart(8)} msgs/s  p50 ${f.p50Ms.toFixed(2).padStart(7)} ms  p99 ${f.p99Ms.toFixed(2).padStart(7)} ms`;
}

/** The announcement's run in REGION once done, and how long it took from the call. */
async function announce(call: (action: string, params: unknown) => Promise<any>): Promise<{ ms: number; progress: RunProgress; id: string }> {
	const started = performance.now();
	const { id } = (await call("sv-notice.announce", { title: "Bench", body: "An announcement to every user of the region", regions: [REGION] })) as {
		id: string;
	};
	for (;;) {
		const progress = ((await call("sv-notice.announcement", { id })) as { regions: Record<string, RunProgress> }).regions[REGION]!;
		if (progress.done) return { ms: performance.now() - started, progress, id };
		if (performance.now() - started > ANNOUNCE_TIMEOUT_MS)
			throw new Error(`announcement not done within ${ANNOUNCE_TIMEOUT_MS / 1000} s: ${JSON.stringify(progress)}`);
		await sleep(ANNOUNCE_POLL_MS);
	}
}

async function main(): Promise<void> {
	console.log(
		`notice bench: ${NODES} region nodes, ${IN_FLIGHT_LEVELS.join(" then ")} sends in flight, ${STREAM_USERS} users with a live stream open, ${ROUNDS} alternating ${WINDOW_MS / 1000} s windows ` +
			`after ${WARMUP_MS / 1000} s warm-ups, then an announcement to ${ANNOUNCE_USERS.toLocaleString("en-US")} users; NATS ${REAL.nats}, MariaDB ${REAL.mysql}; ` +
			`load average ${loadavg()[0]!.toFixed(2)} on ${availableParallelism()} cores\n`
	);
	const figures = await withCleanups(async cleanups => {
		const run = runId();
		const bucket = `bench-notice-directory-${run}`;
		const namespace = `bn${run}`;
		const blindIndexKey = randomBytes(32);
		const stores = realStores(run, REGION);
		// Pushed before the servers, so it runs after they have stopped.
		cleanups.push(async () => {
			await cleanupRealStores(stores);
			await deleteKvBucket(bucket);
			await deleteChannelStreams(namespace);
		});
		const setupStarted = performance.now();
		const rawArrivals = new Arrivals();
		const raw = await rawJetStream(cleanups, REAL.nats, run, rawArrivals);

		const wwwPorts: number[] = [];
		for (let i = 0; i < NODES; i++) wwwPorts.push(await freePort());
		const serverEnv = {
			...process.env,
			EDGEHOME_BLIND_INDEX_KEY: blindIndexKey.toString("base64"),
			EDGEHOME_PII_KEYS: `b1:${randomBytes(32).toString("base64")}`,
			// One client is one IP and a few users: the gateway's limits would measure themselves.
			EDGEHOME_RATE_IP_PER_MIN: "100000000",
			EDGEHOME_RATE_USER_PER_MIN: "100000000"
		};
		for (const [i, port] of wwwPorts.entries()) {
			// BENCH_NOTICE_CPU_PROFILE profiles the first node.
			const env = i === 0 ? serverEnv : { ...serverEnv, BENCH_NOTICE_CPU_PROFILE: "" };
			await startServer(cleanups, SERVER_SCRIPT, [REGION, REAL.nats, bucket, `${namespace}-`, run, String(port)], env);
		}
		const client = await startKvNode({ region: REGION, natsUrl: REAL.nats, bucket, namespacePrefix: `${namespace}-`, blindIndexKey });
		cleanups.push(client.stop);
		const { broker } = client.node;
		await broker.waitForServices(["sv-notice", "sv-user"], 20_000, 50);
		const call = (action: string, params: unknown) => broker.call(action, params);
		const db = await createConnection({ uri: stores.sql });
		cleanups.push(() => db.end());

		const gateways = wwwPorts.map(port => `http://127.0.0.1:${port}`);
		const www = gateways[0]!;
		const users = new Array<{ id: string; token: string }>(STREAM_USERS);
		await inParallel(STREAM_USERS, SIGNUP_IN_FLIGHT, async i => {
			users[i] = await signUp(www, `bn${i}x${run}`, COUNTRY);
		});
		const noticeArrivals = new Arrivals();
		const streams = users.map((u, i) =>
			openNoticeStream(gateways[i % gateways.length]!, u.token, (data, at) => {
				const marker = /"text":"n(\d+) sent/.exec(data);
				if (marker) noticeArrivals.arrived(Number(marker[1]), at);
			})
		);
		cleanups.push(async () => {
			for (const s of streams) s.close();
		});
		await Promise.all(streams.map(s => s.opened));
		console.log(`setup: ${STREAM_USERS} users registered, logged in and streaming, in ${((performance.now() - setupStarted) / 1000).toFixed(1)} s\n`);

		let acked = 0;
		const notice: Side = {
			async send(n) {
				await broker.call("sv-notice.send", {
					userId: users[n % STREAM_USERS]!.id,
					category: "wallet",
					template: "transfer-received",
					data: { amount: "100", currency: "JPY", from: `n${n}` },
					idempotencyKey: `bn-${run}-${n}`
				});
				acked++;
			}
		};
		const levels: Level[] = [];
		for (const inFlight of IN_FLIGHT_LEVELS) {
			const sides: [Side, Arrivals, Window[]][] = [
				[raw, rawArrivals, []],
				[notice, noticeArrivals, []]
			];
			for (const [side, arrivals] of sides) await window(side, arrivals, WARMUP_MS, inFlight);
			for (let r = 0; r < ROUNDS; r++) for (const [side, arrivals, windows] of sides) windows.push(await window(side, arrivals, WINDOW_MS, inFlight));
			const [rawWindows, noticeWindows] = sides.map(s => s[2]);
			levels.push({ inFlight, raw: sideFigures(rawWindows!), notice: sideFigures(noticeWindows!) });
		}
		const written = await count(db, "select count(*) as n from notice_inbox where template = 'transfer-received'");
		if (written !== acked) throw new Error(`(b) wrote ${written} inbox entries for ${acked} sends acknowledged`);
		console.log(`checks after (b): ${acked} sends acknowledged, ${written} inbox entries written`);

		const seeded = performance.now();
		const present = await count(db, "select count(*) as n from users");
		await addUsers(db, client.store, users[0]!.id, ANNOUNCE_USERS - present);
		console.log(`(c) setup: ${ANNOUNCE_USERS - present} users added in ${((performance.now() - seeded) / 1000).toFixed(1)} s`);
		const announced = await announce(call);
		const entries = await count(db, "select count(*) as n from notice_inbox where idempotency_key = ?", [`announcement:${announced.id}`]);
		const usersWithEntry = await count(db, "select count(distinct user_id) as n from notice_inbox where idempotency_key = ?", [`announcement:${announced.id}`]);
		if (entries !== ANNOUNCE_USERS || usersWithEntry !== ANNOUNCE_USERS)
			throw new Error(`(c) ${entries} entries for ${usersWithEntry} of ${ANNOUNCE_USERS} users: ${JSON.stringify(announced.progress)}`);
		console.log(`checks after (c): ${entries} entries, one for each of ${usersWithEntry} users; run ${JSON.stringify(announced.progress)}`);
		return { levels, announcement: { ...announced, entries }, acked };
	});

	const peak = (side: "raw" | "notice") => figures.levels.reduce((best, l) => (l[side].callsPerSec > best[side].callsPerSec ? l : best));
	const [rawPeak, noticePeak] = [peak("raw"), peak("notice")];
	const ratio = noticePeak.notice.callsPerSec / rawPeak.raw.callsPerSec;
	const usersPerSec = figures.announcement.progress.written / (figures.announcement.ms / 1000);
	console.log("");
	for (const l of figures.levels) {
		console.log(`${l.inFlight} sends in flight:`);
		console.log(line("(a) baseline: JetStream publish+ack, 1 consumer acking", l.raw));
		console.log(line("(b) sv-notice.send -> inbox -> live stream (SSE)", l.notice));
		console.log(`    (b)/(a) x${(l.notice.callsPerSec / l.raw.callsPerSec).toFixed(3)}`);
	}
	console.log(
		`(c) announcement to ${ANNOUNCE_USERS.toLocaleString("en-US")} users: ${(figures.announcement.ms / 1000).toFixed(1)} s, ${Math.round(usersPerSec).toLocaleString("en-US")} users/s`
	);
	console.log(
		`\n(b)/(a) throughput x${ratio.toFixed(3)}: (b)'s best, at ${noticePeak.inFlight} in flight, over (a)'s best, at ${rawPeak.inFlight} (goal >= ${GOAL}: ${ratio >= GOAL ? "met" : "NOT met"})`
	);
	for (const l of figures.levels)
		for (const [name, f] of [
			["(a)", l.raw],
			["(b)", l.notice]
		] as const)
			if (f.duplicates || Object.keys(f.errors).length)
				console.log(`${name} at ${l.inFlight} in flight: ${f.duplicates} arrived twice, refused sends ${JSON.stringify(f.errors)}`);
	console.log(`load average at the end: ${loadavg()[0]!.toFixed(2)} on ${availableParallelism()} cores\n`);
	const out = (f: SideFigures) => ({
		msgsPerSec: Math.round(f.callsPerSec),
		p50Ms: round(f.p50Ms, 3),
		p99Ms: round(f.p99Ms, 3),
		messages: f.calls,
		duplicates: f.duplicates,
		errors: f.errors
	});
	console.log(
		JSON.stringify({
			regionNodes: NODES,
			streamUsers: STREAM_USERS,
			cores: availableParallelism(),
			loadAverageAtEnd: round(loadavg()[0]!, 2),
			raw: { inFlight: rawPeak.inFlight, ...out(rawPeak.raw) },
			notice: { inFlight: noticePeak.inFlight, ...out(noticePeak.notice) },
			levels: figures.levels.map(l => ({
				inFlight: l.inFlight,
				raw: out(l.raw),
				notice: out(l.notice),
				noticeOverRaw: round(l.notice.callsPerSec / l.raw.callsPerSec, 4)
			})),
			announcement: {
				users: ANNOUNCE_USERS,
				seconds: round(figures.announcement.ms / 1000, 2),
				usersPerSec: Math.round(usersPerSec),
				...figures.announcement.progress
			},
			noticeOverRaw: round(ratio, 4),
			goal: GOAL,
			met: ratio >= GOAL
		})
	);
}

main().catch(err => {
	console.error(err);
	process.exitCode = 1;
});
