import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import type { Connection, RowDataPacket } from "mysql2/promise";
import { createConnection } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NatsKvDirectoryStore } from "../../regions/directory/nats-kv-store.ts";
import { addUsers } from "../bench/notice-users.ts";
import { deleteChannelStreams } from "../harness/channels-streams.ts";
import { openKvDirectory } from "../harness/kv-node.ts";
import { cleanupRealStores, deleteKvBucket, REAL, realStores, runId } from "../harness/real-servers.ts";

/*
 * kill -9 of sv-notice during an announcement to 5,000 users, then a restart: a real cn-east
 * region node (test/chaos/chaos-node.ts: NATS transport, the KV directory, MariaDB) running
 * sv-region, sv-user and sv-notice in its own process is SIGKILLed while its fan-out is part way
 * through, and started again; the new process takes the run over once the dead one's hold lapses
 * and finishes it. Every user ends with exactly one inbox entry of the announcement, and the run's
 * counts say so.
 */

const CHAOS_NODE = fileURLToPath(new URL("../chaos/chaos-node.ts", import.meta.url));
const REGION = "cn-east";
const USERS = 5000;
/** The fan-out is killed once this many entries are written (well inside the run), with a page part written. */
const KILL_AFTER = 1500;
/**
 * Sends of the page in flight still to come at the kill: enough that the page cannot finish and be
 * counted between the last look and the kill (with a page almost done it could, and once did).
 */
const LEFT_IN_PAGE = 200;
/** Users a page of the fan-out sends to at once: large, so that the kill lands inside one. */
const PAGE = 500;
/** The dead node's hold on the run: the restarted one waits this long before taking it over. */
const LEASE_MS = 2000;
const READY_MS = 30_000;
/** Bounds of the fan-out's two halves (a few seconds each on an idle machine; a loaded one is slower). */
const FIRST_HALF_MS = 45_000;
const SECOND_HALF_MS = 75_000;

const run = runId();
const namespacePrefix = `ak${run}-`;
const bucket = `announce-kill-${run}`;
const blindIndexKey = randomBytes(32);
const stores = realStores(run, REGION);

interface Reply {
	ok: boolean;
	res?: any;
	type?: string;
	message?: string;
}

/** A region node in its own process, driven over chaos-node's command pipe. */
class NodeProcess {
	readonly proc: ChildProcess;
	readonly ready: Promise<void>;
	private readonly replies = new Map<number, (r: Reply) => void>();
	private next = 0;

	constructor(name: string) {
		this.proc = spawn(process.execPath, [CHAOS_NODE], {
			env: {
				...process.env,
				CHAOS_REGION: REGION,
				CHAOS_ROLE: "svc",
				CHAOS_NATS_URL: REAL.nats,
				CHAOS_BUCKET: bucket,
				// One NATS server: the directory's origin is there, no mirror.
				CHAOS_HUB_REPLICAS: "0",
				CHAOS_RUN: run,
				CHAOS_NODE_ID: name,
				CHAOS_SERVICES: "sv-user,sv-notice",
				// No other region runs: nothing to discover there.
				CHAOS_DISCOVERY_WAIT_MS: "0",
				EDGEHOME_NAMESPACE_PREFIX: namespacePrefix,
				EDGEHOME_BLIND_INDEX_KEY: blindIndexKey.toString("base64"),
				EDGEHOME_PII_KEYS: `k1:${randomBytes(32).toString("base64")}`,
				EDGEHOME_NOTICE_ANNOUNCE_LEASE_MS: String(LEASE_MS),
				EDGEHOME_NOTICE_ANNOUNCE_POLL_MS: "200",
				EDGEHOME_NOTICE_ANNOUNCE_PAGE: String(PAGE),
				EDGEHOME_NOTICE_ANNOUNCE_RETRY_MS: "50",
				EDGEHOME_LOG_LEVEL: "warn",
				EDGEHOME_LOG_FORMAT: "json"
			},
			stdio: ["pipe", "pipe", "pipe", "pipe"]
		});
		let log = "";
		for (const out of [this.proc.stdout!, this.proc.stderr!]) out.on("data", d => (log = (log + d).slice(-4000)));
		this.proc.stdin!.on("error", () => undefined);
		this.ready = new Promise((resolve, reject) => {
			const timer = setTimeout(() => reject(new Error(`${name} not ready within ${READY_MS} ms: ${log}`)), READY_MS);
			this.proc.once("exit", code => reject(new Error(`${name} exited (${code}) before it was ready: ${log}`)));
			createInterface({ input: this.proc.stdio[3] as Readable }).on("line", line => {
				if (line.startsWith("@ready ")) {
					clearTimeout(timer);
					resolve();
				} else if (line.startsWith("@res ")) {
					const reply = JSON.parse(line.slice(5)) as Reply & { id: number };
					this.replies.get(reply.id)?.(reply);
					this.replies.delete(reply.id);
				}
			});
		});
	}

	async call<T>(action: string, params: unknown): Promise<T> {
		const id = ++this.next;
		const reply = await new Promise<Reply>(resolve => {
			this.replies.set(id, resolve);
			this.proc.stdin!.write(`${JSON.stringify({ id, action, params })}\n`);
		});
		if (!reply.ok) throw new Error(`${action}: ${reply.type}: ${reply.message}`);
		return reply.res as T;
	}

	async kill(): Promise<void> {
		if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
		const gone = once(this.proc, "exit");
		this.proc.kill("SIGKILL");
		await gone;
	}
}

let node: NodeProcess | undefined;
let db: Connection;
let store: NatsKvDirectoryStore;

const count = async (query: string, params: unknown[] = []) => Number((await db.query<RowDataPacket[]>(query, params))[0][0]!.n);

beforeAll(async () => {
	node = new NodeProcess(`${REGION}-notice-1`);
	await node.ready;
	db = await createConnection({ uri: stores.sql });
	store = await openKvDirectory({ region: REGION, natsUrl: REAL.nats, bucket, namespacePrefix, blindIndexKey });
	const { userId } = await node.call<{ userId: string }>("sv-region.register", { identities: [{ kind: "username", value: `ak-${run}` }], country: "JP" });
	// Written as registration leaves them (registering 5,000 through scrypt would take minutes).
	await addUsers(db, store, userId, USERS);
}, 90_000);

afterAll(async () => {
	await node?.kill();
	await db?.end();
	await store?.close();
	await cleanupRealStores(stores);
	await deleteKvBucket(bucket);
	await deleteChannelStreams(namespacePrefix.slice(0, -1));
});

describe("sv-notice SIGKILLed during an announcement to 5,000 users, then restarted", () => {
	it(
		"gives every user exactly one inbox entry, and counts each once",
		async () => {
			const { id } = await node!.call<{ id: string }>("sv-notice.announce", { title: "Kill -9", body: "Survived", regions: [REGION] });
			const key = `announcement:${id}`;
			const state = async () => ({
				entries: await count("select count(*) as n from notice_inbox where idempotency_key = ?", [key]),
				...((await db.query<RowDataPacket[]>("select written, done from notice_announcement_runs where id = ?", [id]))[0][0] as {
					written: number;
					done: number;
				})
			});
			const announcedAt = Date.now();
			// Killed with entries written that the run has not counted yet: a page in flight, its cursor not moved.
			const inFlight = (now: { entries: number; written: number }) => now.entries - Number(now.written);
			for (let now = await state(); now.entries < KILL_AFTER || inFlight(now) <= 0 || inFlight(now) > PAGE - LEFT_IN_PAGE; now = await state()) {
				if (Date.now() - announcedAt > FIRST_HALF_MS)
					throw new Error(`no page in flight past ${KILL_AFTER} entries within ${FIRST_HALF_MS} ms: ${JSON.stringify(now)}`);
				await sleep(10);
			}
			await node!.kill();
			const killedAfterMs = Date.now() - announcedAt;
			const atKill = await state();

			node = new NodeProcess(`${REGION}-notice-2`);
			await node.ready;
			const restartedAt = Date.now();
			type Progress = { regions: Record<string, { targeted: number; written: number; pushed: number; failed: number; done: boolean; failures: unknown[] }> };
			let progress: Progress["regions"][string] | undefined;
			while (!progress?.done) {
				if (Date.now() - restartedAt > SECOND_HALF_MS) throw new Error(`not done ${SECOND_HALF_MS} ms after the restart: ${JSON.stringify(progress)}`);
				await sleep(200);
				progress = (await node.call<Progress>("sv-notice.announcement", { id })).regions[REGION];
			}
			const tookOverMs = Date.now() - restartedAt;
			const users = await count("select count(*) as n from users");
			const withOne = await count(
				"select count(*) as n from (select user_id from notice_inbox where idempotency_key = ? group by user_id having count(*) = 1) once",
				[key]
			);
			const withMore = await count(
				"select count(*) as n from (select user_id from notice_inbox where idempotency_key = ? group by user_id having count(*) > 1) twice",
				[key]
			);
			const without = await count(
				"select count(*) as n from users u where not exists (select 1 from notice_inbox i where i.user_id = u.id and i.idempotency_key = ?)",
				[key]
			);
			console.log(
				`announcement to ${users} users: killed ${(killedAfterMs / 1000).toFixed(1)} s in, at ${atKill.entries} entries written (${atKill.written} counted, done ${atKill.done}); ` +
					`restarted, done ${(tookOverMs / 1000).toFixed(1)} s later: users with exactly one entry ${withOne}, with more than one ${withMore}, with none ${without}; ` +
					`run ${JSON.stringify(progress)}`
			);
			// The kill landed inside the run: some users had their entry, most had not.
			expect(atKill.entries).toBeGreaterThanOrEqual(KILL_AFTER);
			expect(atKill.entries).toBeLessThan(USERS);
			expect(atKill.entries).toBeGreaterThan(Number(atKill.written));
			expect(Number(atKill.done)).toBe(0);
			expect({ users, withOne, withMore, without }).toEqual({ users: USERS, withOne: USERS, withMore: 0, without: 0 });
			expect(progress).toEqual({ targeted: USERS, written: USERS, pushed: USERS, failed: 0, done: true, failures: [] });
		},
		READY_MS + FIRST_HALF_MS + SECOND_HALF_MS
	);
});
