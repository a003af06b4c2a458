import { randomBytes, randomUUID } from "node:crypto";
import { loadavg } from "node:os";
import type { Kysely } from "kysely";
import type { AuditMessage } from "../../mixins/audit.mixin.ts";
import { audit } from "../../mixins/audit.mixin.ts";
import type { ChannelDelivery } from "../../mixins/channels/declaration.ts";
import { unscoped } from "../../regions/stores/scoped-db.ts";
import { dropMysqlDatabase } from "../../regions/stores/sql.ts";
import { deleteChannelStreams } from "../harness/channels-streams.ts";
import { startKvNode } from "../harness/kv-node.ts";
import { deleteKvBucket, REAL, runId } from "../harness/real-servers.ts";
import { within } from "../harness/waiting.ts";
import { round, withCleanups } from "./measure.ts";

/**
 * `npm run bench:log`: audit records per second, ingested and queryable, on this machine's MariaDB
 * and NATS, side by side in alternating rounds:
 * (a) raw: the same rows, prebuilt (hashes and all), inserted into sv-log's own table (under a
 *     region of their own) in batches of BATCH rows, one batch at a time (as sv-log appends a
 *     region's chain), then counted;
 * (b) sv-log: the records handed to sv-log's channel handler (the service's own path: checks,
 *     redaction, the chain's hashes, batching, the append), up to its channels' 1000 in flight,
 *     until each is stored, then found by a query;
 * (c) end to end: producers' `audit()` through the durable channel (JetStream) to sv-log, until a
 *     query finds them all: what the channel adds (see `npm run bench:channels` for its own ceiling).
 * The goal is (b)/(a) ≥ 0.7. BENCH_LOG_RECORDS, BENCH_LOG_ROUNDS change the size. Ends with one JSON line.
 */

const RECORDS = Number(process.env.BENCH_LOG_RECORDS ?? 20_000);
const ROUNDS = Number(process.env.BENCH_LOG_ROUNDS ?? 3);
/** sv-log's batch (EDGEHOME_LOG_BATCH's default), the baseline's too. */
const BATCH = 200;
/** Producers' sends in flight for (c). */
const SENDS_IN_FLIGHT = 100;
const GOAL = 0.7;
const REGION = "cn-east";
/** Where the raw rows go in sv-log's table: a chain of their own, beside the service's. */
const RAW_REGION = "bench-raw";

/** A record as a login leaves it: a user, a client, a session, a hashed IP. */
function message(i: number, run: string): AuditMessage {
	return {
		at: Date.now(),
		actor: randomBytes(13).toString("hex"),
		action: `bench.${run}`,
		target: `t${i}`,
		outcome: "success",
		detail: { client: "www", sid: randomUUID() },
		ipHash: randomBytes(32).toString("hex")
	};
}

/** Rows as sv-log stores them, built before the clock starts. */
function rawRows(count: number, from: number, run: string) {
	return Array.from({ length: count }, (_, i) => {
		const m = message(i, run);
		return {
			region: RAW_REGION,
			seq: from + i + 1,
			id: randomUUID(),
			at: m.at,
			actor: m.actor,
			action: m.action,
			target: m.target,
			outcome: m.outcome,
			request_id: randomUUID(),
			trace_id: null,
			ip_hash: m.ipHash,
			detail: JSON.stringify(m.detail),
			logged_at: Date.now(),
			prev_hash: randomBytes(32).toString("hex"),
			hash: randomBytes(32).toString("hex")
		};
	});
}

/** The last position of a region's chain (0 when empty). */
async function headOf(db: Kysely<any>, region: string): Promise<number> {
	const row = await db
		.selectFrom("audit_log")
		.select(eb => eb.fn.max("seq").as("seq"))
		.where("region", "=", region)
		.executeTakeFirst();
	return Number(row?.seq ?? 0);
}

/**
 * A round's records: those of `action` after position `after` of the region's chain. A range of
 * the primary key, so each side's count reads its own round's rows, however many the table holds.
 */
async function countOf(db: Kysely<any>, region: string, after: number, action: string): Promise<number> {
	const row = await db
		.selectFrom("audit_log")
		.select(eb => eb.fn.countAll().as("n"))
		.where("region", "=", region)
		.where("seq", ">", after)
		.where("action", "=", action)
		.executeTakeFirstOrThrow();
	return Number(row.n);
}

async function main(): Promise<void> {
	// sv-log signs checkpoints and producers hash IPs with keys derived from these: a key of this run's own.
	process.env.EDGEHOME_PII_KEYS ??= `bench:${randomBytes(32).toString("base64")}`;
	const run = runId();
	const logUrl = `${REAL.mysql}/edgehome_bench_${run}_log`;
	const namespacePrefix = `blog${run}-`;
	await withCleanups(async cleanups => {
		const bucket = `bench-log-${run}`;
		cleanups.push(() => deleteKvBucket(bucket));
		cleanups.push(() => deleteChannelStreams(namespacePrefix));
		cleanups.push(() => dropMysqlDatabase(logUrl));
		const { node, stop } = await startKvNode({
			region: REGION,
			natsUrl: REAL.nats,
			bucket,
			namespacePrefix,
			blindIndexKey: randomBytes(32),
			services: ["sv-log"],
			stores: { sql: logUrl, keyPrefix: `${namespacePrefix}:` },
			env: { EDGEHOME_NAMESPACE_PREFIX: namespacePrefix }
		});
		cleanups.push(stop);
		const broker = node.broker;
		const service = broker.getLocalService("sv-log") as unknown as { ingest(msg: ChannelDelivery<AuditMessage>): Promise<void> };
		// The database as sv-log holds it (past any transaction scope): the raw rows take the same way.
		const logDb = unscoped(node.stores.sql.db);
		let rawSeq = 0;
		let rounds = 0;

		const rawRound = async (count: number): Promise<number> => {
			const tag = `raw${++rounds}`;
			const after = rawSeq;
			const rows = rawRows(count, rawSeq, tag);
			rawSeq += count;
			const started = performance.now();
			for (let i = 0; i < rows.length; i += BATCH)
				await logDb
					.insertInto("audit_log")
					.values(rows.slice(i, i + BATCH))
					.execute();
			if ((await countOf(logDb, RAW_REGION, after, `bench.${tag}`)) !== count) throw new Error("the raw rows are not all there");
			return count / ((performance.now() - started) / 1000);
		};

		const svLogRound = async (count: number): Promise<number> => {
			const tag = `svlog${++rounds}`;
			const after = await headOf(logDb, REGION);
			const deliveries = Array.from({ length: count }, (_, i) => {
				const payload = message(i, tag);
				const ctx = broker.ContextFactory.create(broker, null as never, payload, { requestID: randomUUID(), meta: {} } as never);
				return { id: randomUUID(), channel: "audit.record", group: "sv-log", payload, headers: {}, attempt: 1, ctx } as ChannelDelivery<AuditMessage>;
			});
			const started = performance.now();
			let next = 0;
			// As the channel hands them over: at most its 1000 in flight, each acknowledged once stored.
			await Promise.all(
				Array.from({ length: 1000 }, async () => {
					while (next < count) await service.ingest(deliveries[next++]!);
				})
			);
			// The last record found by its request id (an indexed query), and all of them counted as the baseline's are.
			const found = await broker.call<{ items: unknown[] }, unknown>("sv-log.query", {
				region: REGION,
				requestId: deliveries[count - 1]!.ctx.requestID,
				limit: 1
			});
			if (found.items.length !== 1 || (await countOf(logDb, REGION, after, `bench.${tag}`)) !== count) throw new Error("sv-log's records are not all there");
			return count / ((performance.now() - started) / 1000);
		};

		const channelRound = async (count: number): Promise<number> => {
			const tag = `e2e${++rounds}`;
			const after = await headOf(logDb, REGION);
			const started = performance.now();
			let next = 0;
			await Promise.all(
				Array.from({ length: SENDS_IN_FLIGHT }, async () => {
					while (next < count) {
						const { ipHash: _hashed, at: _now, ...event } = message(next++, tag);
						await audit(broker, undefined, event);
					}
				})
			);
			await within(async () => (await countOf(logDb, REGION, after, `bench.${tag}`)) >= count, 120_000);
			return count / ((performance.now() - started) / 1000);
		};

		// Warm-up: connections, JIT, the channel's consumer.
		await rawRound(2000);
		await svLogRound(2000);
		await channelRound(2000);
		const sums = { raw: 0, svLog: 0, channel: 0 };
		for (let r = 0; r < ROUNDS; r++) {
			const raw = await rawRound(RECORDS);
			const svLog = await svLogRound(RECORDS);
			const channel = await channelRound(RECORDS);
			// Each round as it went: on a shared machine one round can be far off the others.
			console.log(
				`round ${r + 1}: (a) ${Math.round(raw)}, (b) ${Math.round(svLog)}, (c) ${Math.round(channel)} records/s; (b)/(a) ${(svLog / raw).toFixed(3)}; load ${loadavg()[0]!.toFixed(2)}`
			);
			sums.raw += raw;
			sums.svLog += svLog;
			sums.channel += channel;
		}
		const mean = { raw: sums.raw / ROUNDS, svLog: sums.svLog / ROUNDS, channel: sums.channel / ROUNDS };
		const verified = await broker.call<{ ok: boolean; checked: number }, unknown>("sv-log.verify", { region: REGION });
		const ratio = mean.svLog / mean.raw;
		const endToEnd = mean.channel / mean.raw;

		console.log(
			`\naudit records ingested and queryable, MariaDB, ${ROUNDS} alternating rounds of ${RECORDS} (batches of ${BATCH}), load ${loadavg()[0]!.toFixed(2)}`
		);
		const rows: [string, number][] = [
			["(a) raw batched insert", mean.raw],
			["(b) sv-log (channel handler → chain → store)", mean.svLog],
			["(c) audit() → JetStream channel → sv-log", mean.channel]
		];
		for (const [name, perSec] of rows) console.log(`${name.padEnd(48)} ${Math.round(perSec).toLocaleString("en-US").padStart(8)} records/s`);
		console.log(`sv-log / raw: ${ratio.toFixed(3)} (goal ≥ ${GOAL}: ${ratio >= GOAL ? "met" : "NOT met"}); end to end / raw: ${endToEnd.toFixed(3)}`);
		console.log(`chain of ${REGION} after the run: ${verified.ok ? "verifies" : "BROKEN"} (${verified.checked} records)`);
		console.log(
			JSON.stringify({
				bench: "log",
				records: RECORDS,
				rounds: ROUNDS,
				batch: BATCH,
				rawPerSec: Math.round(mean.raw),
				svLogPerSec: Math.round(mean.svLog),
				endToEndPerSec: Math.round(mean.channel),
				svLogOverRaw: round(ratio, 4),
				endToEndOverRaw: round(endToEnd, 4),
				goal: GOAL,
				met: ratio >= GOAL,
				chainVerified: verified.ok
			})
		);
	});
}

main().then(
	() => process.exit(process.exitCode ?? 0),
	err => {
		console.error(err);
		process.exit(1);
	}
);
