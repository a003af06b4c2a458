import { randomBytes, randomInt } from "node:crypto";
import { availableParallelism, loadavg } from "node:os";
import { join } from "node:path";
import type { Connection } from "mysql2/promise";
import { createConnection } from "mysql2/promise";
import { newUserId } from "../../regions/directory/entries.ts";
import { dropMysqlDatabase } from "../../regions/stores/sql.ts";
import type { Reconciliation } from "../../services/sv-money/reconciliation.ts";
import { deleteChannelStreams } from "../harness/channels-streams.ts";
import { startKvNode } from "../harness/kv-node.ts";
import { cleanupRealStores, deleteKvBucket, REAL, realStores, runId } from "../harness/real-servers.ts";
import { within } from "../harness/waiting.ts";
import { benchSetting, READY_TIMEOUT_MS, round, startServer, withCleanups } from "./measure.ts";
import { count, expectCount, expectEqual, expectReconciled, inTransit, newTally, tallied } from "./money-checks.ts";
import type { CpuWatch } from "./money-cpu.ts";
import { watchCpu } from "./money-cpu.ts";
import { crossRegion } from "./money-cross.ts";
import type { LoadFigures, LoadWindow } from "./money-load.ts";
import { drive, figuresOf, inParallel } from "./money-load.ts";
import type { Profile, Sample } from "./money-profile.ts";
import { addTo, emptyProfile, innodbCounters, printProfile, statementsOf } from "./money-profile.ts";
import { openRawLedger } from "./money-raw.ts";
import type { MoneyNodeStats } from "./money-server.ts";
import { countStatements, statementCounts } from "./money-statements.ts";

/**
 * `npm run bench:money`: sv-money's transfers on this machine's MariaDB and NATS, side by side with
 * (a) the physical limit of the design: one plain transaction per transfer on the same MariaDB,
 * with the same pool size and calls in flight (money-raw.ts); (b) same-region transfers between
 * uniformly random users through the broker, to a region node in its own process (money-server.ts);
 * (c) a hot account: HOT_PAYERS payers paying one payee; (d) transfers to the users of a second
 * region, from the call to `completed`. (a), (a') (the baseline with (c)'s hot payee), (b) and (c)
 * run in alternating windows so machine noise weighs on each alike. After each part the ledgers
 * reconcile and the transfers recorded are counted against those acknowledged; either failing fails
 * the bench. A profile of each case follows the figures: the fence's batches, statements per
 * transfer and what each took, deadlocks and lock waits, and the CPU each side spent per transfer
 * (money-profile.ts); BENCH_MONEY_CPU_PROFILE=<dir> also writes the money nodes' V8 CPU profiles.
 * BENCH_MONEY_* variables shorten or lengthen the parts. Ends with one JSON line.
 */

const SERVER_SCRIPT = join(import.meta.dirname, "money-server.ts");
const HOME = "cn-east";
const AWAY = "eu-central";
/** Countries the two regions assign (regions/definitions). */
const COUNTRY = { [HOME]: "JP", [AWAY]: "DE" } as const;
const CURRENCY = "CNY";

const USERS = benchSetting("BENCH_MONEY_USERS", 3000);
const HOT_PAYERS = 1000;
const AWAY_USERS = benchSetting("BENCH_MONEY_AWAY_USERS", 200);
/** Calls in flight, for the baseline and sv-money alike. */
const IN_FLIGHT = benchSetting("BENCH_MONEY_IN_FLIGHT", 64);
/** A region node's SQL pool (regions/stores/sql.ts's default, which region nodes run with); the baseline's too. */
const POOL_SIZE = 10;
const WARMUP_MS = benchSetting("BENCH_MONEY_WARMUP_MS", 3000);
const WINDOW_MS = benchSetting("BENCH_MONEY_WINDOW_MS", 4000);
const ROUNDS = benchSetting("BENCH_MONEY_ROUNDS", 3);
const CROSS_MS = benchSetting("BENCH_MONEY_CROSS_MS", 8000);
const CROSS_ALONE_MS = benchSetting("BENCH_MONEY_CROSS_ALONE_MS", 5000);
/** How often the payer side asks whether a lone cross-region transfer completed. */
const POLL_MS = 5;
const COMPLETION_TIMEOUT_MS = 90_000;
const SEED = 1_000_000_000n;
const MAX_AMOUNT = 1000;
const SETUP_IN_FLIGHT = 64;
/** Tries of a setup call that failed retryably (a node missed its heartbeats on a busy machine, say). */
const SETUP_ATTEMPTS = 4;
const GOALS = { batchedOverRaw: 1.0, hotOverUniform: 0.8 };

const amount = () => randomInt(1, MAX_AMOUNT + 1);
/** Two different indexes below `n`. */
function pair(n: number): [number, number] {
	const a = randomInt(n);
	const b = (a + 1 + randomInt(n - 1)) % n;
	return [a, b];
}

/** A setup call, tried again while it fails retryably: an issuance whose outcome was unknown may be issued twice, which the checks allow for. */
async function retried<T>(call: (attempt: number) => Promise<T>): Promise<T> {
	for (let attempt = 1; ; attempt++) {
		try {
			return await call(attempt);
		} catch (err) {
			if (attempt >= SETUP_ATTEMPTS || !(err as { retryable?: boolean }).retryable) throw err;
			await new Promise(r => setTimeout(r, 250 * attempt));
		}
	}
}

/** The cases that run in alternating windows, as the table and the profile name them. */
const LABELS = {
	raw: "(a) baseline: 1 transaction per transfer",
	rawHot: "(a') baseline, hot payee (for scale)",
	uniform: "(b) sv-money same region, uniform",
	hot: "(c) sv-money, 1,000 payers -> 1 payee"
} as const;

interface Case {
	call: (n: number) => Promise<unknown>;
	/** Where the case's statements are sent from (a money node, or this process), for the profile. */
	stats: () => Promise<MoneyNodeStats>;
	windows: LoadWindow[];
	profile: Profile;
}

/** One untimed warm-up window per case, then `ROUNDS` rounds of one timed window each, in turn. */
async function alternate(cases: Case[], db: Connection, cpu: CpuWatch): Promise<void> {
	for (const c of cases) await drive(c.call, WARMUP_MS, IN_FLIGHT);
	for (let r = 0; r < ROUNDS; r++)
		for (const c of cases) {
			const innodb = await innodbCounters(db);
			const before: Sample = { innodb, stats: await c.stats(), cpu: cpu.now() };
			const window = await drive(c.call, WINDOW_MS, IN_FLIGHT);
			const after = { cpu: cpu.now(), stats: await c.stats() };
			addTo(c.profile, window.done, before, { ...after, innodb: await innodbCounters(db) });
			c.windows.push(window);
		}
}

/** A row of the table; a case without a rate (one call at a time) shows "-". */
function line(name: string, f: { callsPerSec?: number; p50Ms: number; p99Ms: number }): string {
	const rate = f.callsPerSec === undefined ? "-" : Math.round(f.callsPerSec).toLocaleString("en-US");
	return `${name.padEnd(46)} ${rate.padStart(12)} ${f.p50Ms.toFixed(2).padStart(9)} ${f.p99Ms.toFixed(2).padStart(9)}`;
}

async function main(): Promise<void> {
	console.log(
		`money bench: ${IN_FLIGHT} calls in flight, SQL pool ${POOL_SIZE} (baseline and region node), ${USERS} users in ${HOME}, ${HOT_PAYERS} hot payers, ` +
			`${ROUNDS} alternating ${WINDOW_MS / 1000} s windows after ${WARMUP_MS / 1000} s warm-ups; MariaDB ${REAL.mysql}, NATS ${REAL.nats}; ` +
			`load average ${loadavg()[0]!.toFixed(2)} on ${availableParallelism()} cores\n`
	);
	const figures = await withCleanups(async cleanups => {
		const run = runId();
		const bucket = `bench-money-directory-${run}`;
		const namespace = `bm${run}`;
		const blindIndexKey = randomBytes(32);
		const serverEnv = { ...process.env, EDGEHOME_BLIND_INDEX_KEY: blindIndexKey.toString("base64") };
		const stores = { home: realStores(run, HOME), away: realStores(run, AWAY) };
		const rawUrl = `${REAL.mysql}/edgehome_t_${run}_money_raw`;
		// Pushed before the servers, so it runs after they have stopped.
		cleanups.push(async () => {
			await cleanupRealStores(stores.home);
			await cleanupRealStores(stores.away);
			await dropMysqlDatabase(rawUrl);
			await deleteKvBucket(bucket);
			await deleteChannelStreams(namespace);
		});
		const setupStarted = performance.now();
		countStatements();
		const cpu = watchCpu(new URL(REAL.nats).port || "4222");
		const raw = await openRawLedger(rawUrl, { count: USERS, seed: SEED, currency: CURRENCY, poolSize: POOL_SIZE });
		cleanups.push(() => raw.close());
		const serverArgs = (region: string) => [region, REAL.nats, bucket, `${namespace}-`, run];
		await Promise.all([HOME, AWAY].map(region => startServer(cleanups, SERVER_SCRIPT, serverArgs(region), serverEnv)));
		const client = await startKvNode({ region: HOME, natsUrl: REAL.nats, bucket, namespacePrefix: `${namespace}-`, blindIndexKey });
		cleanups.push(client.stop);
		const { broker, links } = client.node;
		await broker.waitForServices(["sv-money", "money-bench"], READY_TIMEOUT_MS, 50);
		await within(
			() =>
				links.call(AWAY, "money-bench.stats", {}).then(
					() => true,
					() => false
				),
			READY_TIMEOUT_MS
		);
		const homeDb = await createConnection({ uri: stores.home.sql });
		cleanups.push(() => homeDb.end());
		const awayDb = await createConnection({ uri: stores.away.sql });
		cleanups.push(() => awayDb.end());

		// Users with directory entries (no sv-user profile), each issued `seed` in their home region as soon as registered.
		// The payees of (d) get a wallet (and their region its ownership rows) before they are paid, as users who have used it.
		const operator = newUserId();
		const enrol = async (region: keyof typeof COUNTRY, n: number, seed: bigint) => {
			const ids: string[] = new Array(n);
			await inParallel(n, SETUP_IN_FLIGHT, async i => {
				const { userId } = await retried(attempt =>
					broker.call<{ userId: string }, unknown>("sv-region.register", {
						identities: [{ kind: "username", value: `bm-${region}-${i}-${attempt}-${run}` }],
						country: COUNTRY[region]
					})
				);
				await retried(() => broker.call("sv-money.adjust", { userId, amount: seed.toString(), currency: CURRENCY, reason: "bench seed", operator }));
				ids[i] = userId;
			});
			return ids;
		};
		const [users, payees] = await Promise.all([enrol(HOME, USERS, SEED), enrol(AWAY, AWAY_USERS, 1n)]);
		console.log(
			`setup: ${USERS} + ${AWAY_USERS} users registered and issued, baseline seeded, in ${((performance.now() - setupStarted) / 1000).toFixed(1)} s\n`
		);

		let keys = 0;
		const key = () => `bm-${run}-${++keys}`;
		const same = newTally();
		const transfer = (payer: string, payee: string) =>
			tallied(same, broker.call("sv-money.transfer", { userId: payer, to: payee, amount: String(amount()), currency: CURRENCY, idempotencyKey: key() }));
		const rawTally = newTally();
		const hotPayee = users[USERS - 1]!;
		const rawHotPayee = raw.accounts[USERS - 1]!;
		const homeStats = () => broker.call<MoneyNodeStats, unknown>("money-bench.stats", {});
		// The baseline's statements are this process's own.
		const rawStats = async (): Promise<MoneyNodeStats> => ({
			batches: { batches: 0, writes: 0, left: 0 },
			statements: statementCounts(),
			relay: { sent: 0, failed: 0 }
		});
		const newCase = (call: Case["call"], stats: Case["stats"]): Case => ({ call, stats, windows: [], profile: emptyProfile() });
		const cases: Record<keyof typeof LABELS, Case> = {
			raw: newCase(() => {
				const [a, b] = pair(USERS);
				return tallied(rawTally, raw.transfer(raw.accounts[a]!, raw.accounts[b]!, CURRENCY, BigInt(amount())));
			}, rawStats),
			rawHot: newCase(() => tallied(rawTally, raw.transfer(raw.accounts[randomInt(HOT_PAYERS)]!, rawHotPayee, CURRENCY, BigInt(amount()))), rawStats),
			uniform: newCase(() => {
				const [a, b] = pair(USERS);
				return transfer(users[a]!, users[b]!);
			}, homeStats),
			hot: newCase(() => transfer(users[randomInt(HOT_PAYERS)]!, hotPayee), homeStats)
		};
		await alternate(Object.values(cases), homeDb, cpu);

		console.log("checks after (a)-(c):");
		const rawCheck = await raw.check();
		expectReconciled(rawCheck.reconciliation);
		// One seed entry per account and the issuance's, then two per transfer.
		expectCount("baseline entries (the seed's, then 2 per transfer)", rawCheck.entries, USERS + 1 + 2 * rawTally.acked, 2 * rawTally.failed);
		const reconcileIn = (region: string) => broker.call<Reconciliation, unknown>("sv-money.reconcile", { region });
		const transfersRecorded = (db: Connection, side: "from_id" | "to_id", extra = "") =>
			count(db, `select count(*) as n from money_transfers where kind = 'transfer' and owner_id = ${side}${extra}`);
		expectCount(`${HOME} payers' records of transfers`, await transfersRecorded(homeDb, "from_id"), same.acked, same.failed);
		expectCount(`${HOME} payees' records of transfers`, await transfersRecorded(homeDb, "to_id"), same.acked, same.failed);
		const sameRecorded = await transfersRecorded(homeDb, "from_id");
		expectEqual(`${HOME} transfers not completed`, await transfersRecorded(homeDb, "from_id", " and status <> 'completed'"), 0);
		const homeAfterSame = await reconcileIn(HOME);
		expectReconciled(homeAfterSame);

		console.log(`\n(d) cross-region ${HOME} -> ${AWAY}: ${CROSS_ALONE_MS / 1000} s one at a time, then ${CROSS_MS / 1000} s at ${IN_FLIGHT} in flight`);
		const awayStats = () => links.call<MoneyNodeStats>(AWAY, "money-bench.stats", {});
		const sample = async (stats: () => Promise<MoneyNodeStats>): Promise<Sample> => ({
			innodb: await innodbCounters(homeDb),
			stats: await stats(),
			cpu: cpu.now()
		});
		const [homeBefore, awayBefore] = [await sample(homeStats), await sample(awayStats)];
		const cross = await crossRegion({
			broker,
			payers: users,
			payees,
			payeeRegion: AWAY,
			currency: CURRENCY,
			amount,
			key,
			home: homeDb,
			aloneMs: CROSS_ALONE_MS,
			loadedMs: CROSS_MS,
			inFlight: IN_FLIGHT,
			pollMs: POLL_MS,
			timeoutMs: COMPLETION_TIMEOUT_MS
		});
		const [homeAfter, awayAfter] = [await sample(homeStats), await sample(awayStats)];
		const crossCount = cross.transfers + cross.alone.transfers;
		const crossProfiles = { home: emptyProfile(), away: emptyProfile() };
		addTo(crossProfiles.home, crossCount, homeBefore, homeAfter);
		// The machine-wide figures are counted once, with the payer's side.
		addTo(crossProfiles.away, crossCount, awayBefore, { ...awayAfter, innodb: awayBefore.innodb, cpu: awayBefore.cpu });
		console.log("checks after (d):");
		const crossFailed = Object.values(cross.errors).reduce((sum, n) => sum + n, 0);
		const crossRecorded = await transfersRecorded(homeDb, "from_id", ` and to_region = '${AWAY}'`);
		expectCount(`${HOME} payers' records of transfers to ${AWAY}`, crossRecorded, crossCount, crossFailed);
		expectEqual(`${HOME} payers' records of all transfers`, await transfersRecorded(homeDb, "from_id"), sameRecorded + crossRecorded);
		expectEqual(
			`${HOME} transfers to ${AWAY} completed`,
			await transfersRecorded(homeDb, "from_id", ` and to_region = '${AWAY}' and status = 'completed'`),
			crossRecorded
		);
		expectEqual(`${AWAY} payees' records, once each`, await transfersRecorded(awayDb, "to_id"), crossRecorded);
		expectEqual(`${AWAY} payees' records completed`, await transfersRecorded(awayDb, "to_id", " and status = 'completed'"), crossRecorded);
		expectEqual("in-transit of both regions together", ((await inTransit(homeDb, CURRENCY)) + (await inTransit(awayDb, CURRENCY))).toString(), "0");
		const homeRecon = await reconcileIn(HOME);
		const awayRecon = await reconcileIn(AWAY);
		expectReconciled(homeRecon);
		expectReconciled(awayRecon);
		return {
			raw: figuresOf(cases.raw.windows),
			rawHot: figuresOf(cases.rawHot.windows),
			uniform: figuresOf(cases.uniform.windows),
			hot: figuresOf(cases.hot.windows),
			cross,
			profiles: { uniform: cases.uniform.profile, hot: cases.hot.profile, raw: cases.raw.profile, rawHot: cases.rawHot.profile },
			crossProfiles,
			counts: {
				sameRegion: { ...same, recorded: sameRecorded },
				crossRegion: { acked: crossCount, failed: crossFailed, recorded: crossRecorded },
				baseline: rawTally
			},
			reconciled: { [HOME]: homeRecon.ok && homeAfterSame.ok, [AWAY]: awayRecon.ok, baseline: rawCheck.reconciliation.ok }
		};
	});

	const batchedOverRaw = figures.uniform.callsPerSec / figures.raw.callsPerSec;
	const hotOverUniform = figures.hot.callsPerSec / figures.uniform.callsPerSec;
	console.log(
		`\n${"case".padEnd(46)} ${"transfers/s".padStart(12)} ${"p50 ms".padStart(9)} ${"p99 ms".padStart(9)}   (${IN_FLIGHT} in flight, pool ${POOL_SIZE})`
	);
	for (const which of ["raw", "rawHot", "uniform", "hot"] as const) console.log(line(LABELS[which], figures[which]));
	const c = figures.cross;
	console.log(line("(d) cross-region, accepted (pending)", { callsPerSec: c.acceptedPerSec, p50Ms: c.ackP50Ms, p99Ms: c.ackP99Ms }));
	console.log(line("(d) cross-region, call -> completed", { callsPerSec: c.completedPerSec, p50Ms: c.completeP50Ms, p99Ms: c.completeP99Ms }));
	console.log(line("(d) one at a time, call -> completed", { p50Ms: c.alone.completeP50Ms, p99Ms: c.alone.completeP99Ms }));
	console.log(
		`\n(b)/(a) batchedOverRaw x${batchedOverRaw.toFixed(3)} (goal >= ${GOALS.batchedOverRaw}: ${batchedOverRaw >= GOALS.batchedOverRaw ? "met" : "NOT met"})`
	);
	console.log(
		`(c)/(b) hotOverUniform x${hotOverUniform.toFixed(3)} (goal >= ${GOALS.hotOverUniform}: ${hotOverUniform >= GOALS.hotOverUniform ? "met" : "NOT met"})`
	);
	console.log(
		`(d) completion is the payer home's completed_at (its settle write) minus the call's start, read from its database after the run; ` +
			`one at a time, the payer's getTransfer asked every ${POLL_MS} ms`
	);
	const errors = { raw: figures.raw.errors, rawHot: figures.rawHot.errors, uniform: figures.uniform.errors, hot: figures.hot.errors, cross: c.errors };
	if (Object.values(errors).some(e => Object.keys(e).length)) console.log(`refused calls: ${JSON.stringify(errors)}`);
	console.log(`\nload average at the end: ${loadavg()[0]!.toFixed(2)} on ${availableParallelism()} cores`);
	console.log("\nprofile (timed windows):");
	for (const which of ["raw", "rawHot", "uniform", "hot"] as const) printProfile(LABELS[which], figures.profiles[which]);
	printProfile(`(d) cross-region, the payer's home ${HOME} (both parts of (d), machine-wide figures here)`, figures.crossProfiles.home);
	printProfile(`(d) cross-region, the payee's home ${AWAY}`, figures.crossProfiles.away);
	const out = (f: LoadFigures) => ({ transfersPerSec: Math.round(f.callsPerSec), p50Ms: round(f.p50Ms, 3), p99Ms: round(f.p99Ms, 3), transfers: f.calls });
	const perTransfer = (p: Profile) => {
		const per = (n: number, digits: number) => round(n / Math.max(1, p.transfers), digits);
		const cpuSpent = Object.values(p.cpu).some(sec => sec > 0);
		return {
			statementsPerTransfer: per(statementsOf(p), 2),
			deadlocks: p.statements.deadlocks,
			...(p.batches ? { writesPerBatch: round(p.batchedWrites / p.batches, 1), leftBatch: p.leftBatches } : {}),
			...(cpuSpent
				? {
						cpuMsPerTransfer: Object.fromEntries(Object.entries(p.cpu).map(([side, sec]) => [side, per(sec * 1000, 3)])),
						rowLockWaitsServerWide: p.innodb.rowLockWaits
					}
				: {})
		};
	};
	console.log(
		JSON.stringify({
			inFlight: IN_FLIGHT,
			poolSize: POOL_SIZE,
			users: USERS,
			hotPayers: HOT_PAYERS,
			cores: availableParallelism(),
			loadAverageAtEnd: round(loadavg()[0]!, 2),
			raw: { ...out(figures.raw), ...perTransfer(figures.profiles.raw) },
			rawHot: { ...out(figures.rawHot), ...perTransfer(figures.profiles.rawHot) },
			uniform: { ...out(figures.uniform), ...perTransfer(figures.profiles.uniform) },
			hot: { ...out(figures.hot), ...perTransfer(figures.profiles.hot) },
			cross: {
				acceptedPerSec: Math.round(c.acceptedPerSec),
				completedPerSec: Math.round(c.completedPerSec),
				ackP50Ms: round(c.ackP50Ms, 3),
				ackP99Ms: round(c.ackP99Ms, 3),
				completeP50Ms: round(c.completeP50Ms, 1),
				completeP99Ms: round(c.completeP99Ms, 1),
				transfers: c.transfers,
				alone: {
					transfers: c.alone.transfers,
					ackP50Ms: round(c.alone.ackP50Ms, 2),
					completeP50Ms: round(c.alone.completeP50Ms, 1),
					completeP99Ms: round(c.alone.completeP99Ms, 1)
				},
				payerHome: perTransfer(figures.crossProfiles.home),
				payeeHome: perTransfer(figures.crossProfiles.away)
			},
			counts: figures.counts,
			reconciled: figures.reconciled,
			batchedOverRaw: round(batchedOverRaw, 4),
			hotOverUniform: round(hotOverUniform, 4)
		})
	);
}

main().catch(err => {
	console.error(err);
	process.exitCode = 1;
});
