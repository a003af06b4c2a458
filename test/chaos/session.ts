import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Readable, Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import type { Connection, RowDataPacket } from "mysql2/promise";
import { createConnection } from "mysql2/promise";
import type { ConsumerMessages, JetStreamClient, JetStreamManager, NatsConnection } from "nats";
import { connect, JSONCodec } from "nats";
import type { HomeEntry } from "../../regions/directory/entries.ts";
import type { EdgeTopology, EdgeTopologyOptions } from "../harness/edge-topology.ts";
import { HUB_DOMAIN, startEdgeTopology } from "../harness/edge-topology.ts";
import { cleanupRealStores, realStores, runId } from "../harness/real-servers.ts";
import { ENTRY_NODE_KILLED, NO_ANSWER } from "./codes.ts";
import { AUDIT_TABLE, LEDGER_TABLE } from "./ledger.service.ts";
import type { MirrorRelays } from "./nemeses.ts";

export const PRIMARY = "cn-east";
export const REGIONS = [PRIMARY, "ap-south", "eu-central"];
/** Unpinned countries homed in each region, so every user may move anywhere. */
export const COUNTRY: Record<string, string> = { "cn-east": "JP", "ap-south": "SG", "eu-central": "GB" };
export type Role = "svc" | "aux";
export const ROLES: Role[] = ["svc", "aux"];

const CHAOS_NODE = fileURLToPath(new URL("./chaos-node.ts", import.meta.url));
const READY_MS = 45_000;
/** A node that cannot start within this (its NATS down for good, say) fails the heal: a harness error. */
const START_MS = 120_000;

/** What a node answered, or what the harness knows instead (the node died with the call in flight; no answer in time). */
export type Reply = { ok: true; res: any } | { ok: false; type: string; code?: number; message?: string };

/** One change of a directory key, as the origin stream stored it (server time in µs). */
export interface DirectoryChange {
	seq: number;
	key: string;
	value: any;
	atUs: number;
}

export interface SessionOptions {
	/** Logs of the nodes and servers are kept here (else in a temp folder removed at the end), and the run's databases are kept for inspection. */
	keepDir?: string;
	log?: (line: string) => void;
	/** Gateway relays for the mirror-lag nemesis (nemeses.ts loadMirrorLag). */
	relays?: MirrorRelays;
	/** More environment for every node (CHAOS_SERVICES and the services' settings: the bank test). */
	nodeEnv?: Record<string, string>;
}

/**
 * One region node process, restartable under the same node id (as a pod restarted in place).
 * `holds` counts the nemeses that want it down: it runs again only when none does.
 */
export class NodeProcess {
	readonly region: string;
	readonly role: Role;
	readonly nodeID: string;
	state: "down" | "starting" | "up" = "down";
	holds = 0;
	private proc: ChildProcess | undefined;
	private readonly pending = new Map<number, (reply: Reply) => void>();
	private nextId = 0;
	private chain: Promise<unknown> = Promise.resolve();
	private readonly session: Session;
	starts = 0;

	constructor(session: Session, region: string, role: Role) {
		this.session = session;
		this.region = region;
		this.role = role;
		this.nodeID = `chaos-${region}-${role}`;
	}

	get key(): string {
		return `${this.region}/${this.role}`;
	}

	/** Runs `op` after every lifecycle change queued before it. */
	private queue<T>(op: () => Promise<T>): Promise<T> {
		const next = this.chain.then(op);
		this.chain = next.catch(() => undefined);
		return next;
	}

	/** Calls `action` on this node; the reply, a harness outcome if it died or never answered within `boundMs`. */
	call(action: string, params: unknown, boundMs: number, timeout?: number): Promise<Reply> {
		const proc = this.proc;
		if (this.state !== "up" || !proc) return Promise.resolve({ ok: false, type: "NOT_RUNNING" });
		const id = ++this.nextId;
		return new Promise<Reply>(resolve => {
			const timer = setTimeout(() => {
				this.pending.delete(id);
				resolve({ ok: false, type: NO_ANSWER, message: `no answer within ${boundMs} ms` });
			}, boundMs);
			this.pending.set(id, reply => {
				clearTimeout(timer);
				this.pending.delete(id);
				resolve(reply);
			});
			(proc.stdin as Writable).write(`${JSON.stringify({ id, action, params, ...(timeout ? { timeout } : {}) })}\n`);
		});
	}

	/** Starts the process unless a nemesis holds it down; retried until it is up, held, or the session ends (at most START_MS). */
	ensureUp(): Promise<void> {
		return this.queue(async () => {
			const deadline = Date.now() + START_MS;
			for (let attempt = 1; this.state !== "up" && this.holds === 0 && !this.session.closing; attempt++) {
				try {
					await this.spawnOnce();
				} catch (err) {
					const why = (err as Error).message.split("\n")[0];
					this.session.log(`${this.key}: start ${attempt} failed: ${why}`);
					if (Date.now() > deadline) throw new Error(`${this.key} did not start within ${START_MS} ms: ${why}`);
					await sleep(1000);
				}
			}
		});
	}

	/** SIGKILLs the process (a crash: no drain, no goodbye). */
	kill(): Promise<void> {
		return this.queue(() => this.killNow());
	}

	hold(): Promise<void> {
		this.holds++;
		return this.kill();
	}

	release(): Promise<void> {
		this.holds = Math.max(0, this.holds - 1);
		return this.ensureUp();
	}

	private async killNow(): Promise<void> {
		const proc = this.proc;
		if (!proc) return;
		const gone = new Promise(resolve => (proc.exitCode !== null || proc.signalCode !== null ? resolve(undefined) : proc.once("exit", resolve)));
		proc.kill("SIGKILL");
		await gone;
	}

	private spawnOnce(): Promise<void> {
		const s = this.session;
		const logFd = openSync(join(s.dir, `${this.region}-${this.role}.log`), "a");
		let proc: ChildProcess;
		try {
			proc = spawn(process.execPath, [CHAOS_NODE], {
				env: {
					...process.env,
					...s.nodeEnv,
					CHAOS_REGION: this.region,
					CHAOS_ROLE: this.role,
					CHAOS_NATS_URL: s.cluster.urls[this.region]!,
					CHAOS_BUCKET: s.bucket,
					CHAOS_HUB_REPLICAS: String(s.cluster.placement(this.region).originReplicas),
					CHAOS_RUN: s.run,
					CHAOS_NODE_ID: this.nodeID,
					EDGEHOME_NAMESPACE_PREFIX: s.namespacePrefix,
					EDGEHOME_BLIND_INDEX_KEY: s.blindIndexKey,
					EDGEHOME_LOG_LEVEL: process.env.CHAOS_NODE_LOG_LEVEL ?? "warn",
					EDGEHOME_LOG_FORMAT: "json",
					// The very first node has no other region's services to wait for.
					CHAOS_DISCOVERY_WAIT_MS: this.starts === 0 && this.region === PRIMARY && this.role === "svc" ? "0" : "10000"
				},
				stdio: ["pipe", logFd, logFd, "pipe"]
			});
		} finally {
			closeSync(logFd);
		}
		// A write to a process being killed fails with EPIPE: its calls settle through "exit" instead.
		proc.stdin!.on("error", () => undefined);
		this.proc = proc;
		this.state = "starting";
		this.starts++;
		return new Promise<void>((resolve, reject) => {
			let ready = false;
			const timer = setTimeout(() => {
				proc.kill("SIGKILL");
				reject(new Error(`not ready within ${READY_MS} ms (see ${s.dir})`));
			}, READY_MS);
			createInterface({ input: proc.stdio[3] as Readable }).on("line", line => {
				if (line.startsWith("@ready ")) {
					ready = true;
					clearTimeout(timer);
					this.state = "up";
					resolve();
				} else if (line.startsWith("@res ")) {
					const reply = JSON.parse(line.slice(5)) as Reply & { id: number };
					this.pending.get(reply.id)?.(reply);
				}
			});
			proc.once("exit", (code, signal) => {
				clearTimeout(timer);
				if (this.proc === proc) {
					this.proc = undefined;
					this.state = "down";
				}
				// The calls it was running: their outcome is unknown, and no code of the product's.
				for (const settle of [...this.pending.values()]) settle({ ok: false, type: ENTRY_NODE_KILLED });
				if (signal !== "SIGKILL") s.log(`${this.key} exited by itself (${code ?? signal})${ready ? "" : " during start-up"}`);
				if (!ready) reject(new Error(`exited during start-up (${code ?? signal}); log in ${s.dir}`));
			});
		});
	}
}

/**
 * A three-region supercluster with two node processes per region (svc: sv-region + ledger;
 * aux: sv-region only), a database per region, and a live record of the origin bucket's changes.
 */
export class Session {
	readonly run = runId();
	readonly bucket = `chaos-${this.run}`;
	readonly namespacePrefix = `ch-${this.run}-`;
	readonly blindIndexKey = randomBytes(32).toString("base64");
	readonly dir: string;
	readonly nodes: NodeProcess[] = [];
	/** Every change of the origin bucket, in stream order, with the server's timestamp. */
	readonly changes: DirectoryChange[] = [];
	users: string[] = [];
	closing = false;
	cluster!: EdgeTopology;
	readonly relays: MirrorRelays | undefined;
	readonly nodeEnv: Record<string, string>;
	private readonly keepDir: string | undefined;
	private readonly logger: (line: string) => void;
	private readonly natsHolds: Record<string, number> = {};
	private readonly natsChain: Record<string, Promise<unknown>> = {};
	private recorder:
		| {
				nc: NatsConnection;
				js: JetStreamClient;
				jsm: JetStreamManager;
				lastSeq: number;
				generation: number;
				messages: ConsumerMessages | undefined;
				stalled: { since: number; seq: number } | undefined;
		  }
		| undefined;
	private recorderTimer: NodeJS.Timeout | undefined;
	/** Times the recorder had to be recreated, and the origin's sequence went back (both logged as events). */
	recorderRestarts = 0;
	originRegressions = 0;
	/**
	 * Windows in which the record skipped sequence numbers: the origin keeps one message per key, so
	 * a change not yet read when a later one of the same key arrived is gone. Each runs from the
	 * last change read before the skip to when the skip was seen (server clock, µs).
	 */
	readonly gaps: { fromUs: number; toUs: number }[] = [];
	private lastAtUs = 0;
	private readonly dbs: Record<string, Connection> = {};
	/** Each key's latest value as the live record saw it (moves pick targets by it). */
	private readonly latest = new Map<string, any>();
	readonly events: string[] = [];
	private readonly started = Date.now();

	constructor(opts: SessionOptions = {}) {
		this.keepDir = opts.keepDir;
		this.relays = opts.relays;
		this.nodeEnv = opts.nodeEnv ?? {};
		this.logger = opts.log ?? (() => undefined);
		this.dir = opts.keepDir ? join(opts.keepDir, this.run) : mkdtempSync(join(tmpdir(), "edgehome-chaos-"));
		if (opts.keepDir) mkdirSync(this.dir, { recursive: true });
		for (const region of REGIONS) for (const role of ROLES) this.nodes.push(new NodeProcess(this, region, role));
	}

	log(line: string): void {
		const stamped = `[${((Date.now() - this.started) / 1000).toFixed(1)}s] ${line}`;
		this.events.push(stamped);
		this.logger(stamped);
	}

	node(region: string, role: Role): NodeProcess {
		return this.nodes.find(n => n.region === region && n.role === role)!;
	}

	up(): NodeProcess[] {
		return this.nodes.filter(n => n.state === "up");
	}

	async start(): Promise<void> {
		// `linkFront` is typed only where edge-topology.ts knows it (with mirror-lag.ts).
		this.cluster = await startEdgeTopology(REGIONS, this.relays ? ({ linkFront: this.relays.front } as unknown as EdgeTopologyOptions) : {});
		// One service node first: it makes the origin bucket the recorder follows.
		await this.node(PRIMARY, "svc").ensureUp();
		await this.startRecorder();
		await Promise.all(this.nodes.map(n => n.ensureUp()));
		for (const n of this.nodes) if (n.state !== "up") throw new Error(`${n.key} did not start`);
		for (const region of REGIONS) this.dbs[region] = await createConnection({ uri: realStores(this.run, region).sql });
	}

	/**
	 * Records the origin bucket's every change, live, through an ordered consumer on the primary's
	 * server: the bucket keeps one message per key, so only a live record keeps each user's history
	 * (when a home changed region) with the server's timestamps. A supervisor recreates the consumer
	 * from the last sequence it delivered when it closes or stops moving (a restarted primary).
	 */
	private async startRecorder(): Promise<void> {
		// Through any region's edge server, into the hub's domain where the origin bucket is.
		const servers = REGIONS.map(r => this.cluster.urls[r]!);
		const nc = await connect({ servers, maxReconnectAttempts: -1, reconnectTimeWait: 250, name: "chaos-recorder" });
		const domain = HUB_DOMAIN;
		this.recorder = {
			nc,
			js: nc.jetstream({ domain }),
			jsm: await nc.jetstreamManager({ domain }),
			lastSeq: 0,
			generation: 0,
			messages: undefined,
			stalled: undefined
		};
		await this.consumeFrom(1);
		const supervise = () => {
			void this.superviseRecorder()
				.catch(err => this.log(`recorder check failed: ${(err as Error).message}`))
				.finally(() => {
					if (!this.closing) this.recorderTimer = setTimeout(supervise, 500);
				});
		};
		this.recorderTimer = setTimeout(supervise, 500);
	}

	private get stream(): string {
		return `KV_${this.bucket}`;
	}

	/**
	 * (Re)creates the recorder's consumer from `seq`. Bounded: creating one can hang while the
	 * primary comes back, and the supervisor must stay free to try again. Only the newest
	 * consumer's messages count (a late one is closed), so two never interleave.
	 */
	private async consumeFrom(seq: number): Promise<void> {
		const r = this.recorder!;
		const generation = ++r.generation;
		const prefix = `$KV.${this.bucket}.`;
		const codec = JSONCodec<any>();
		const creating = (async () => {
			// One subject as a string: nats-server 2.9 knows no `filter_subjects` (plural), and an array of one hangs there.
			const consumer = await r.js.consumers.get(this.stream, { filterSubjects: `${prefix}>`, opt_start_seq: seq });
			return consumer.consume({
				callback: m => {
					if (r.generation !== generation || m.seq <= r.lastSeq) return;
					if (r.lastSeq > 0 && m.seq > r.lastSeq + 1) this.gaps.push({ fromUs: this.lastAtUs, toUs: Date.now() * 1000 });
					r.lastSeq = m.seq;
					this.lastAtUs = Math.floor(m.info.timestampNanos / 1000);
					const op = m.headers?.get("KV-Operation");
					const value = op === "DEL" || op === "PURGE" ? undefined : codec.decode(m.data);
					const key = m.subject.slice(prefix.length);
					this.changes.push({ seq: m.seq, key, value, atUs: Math.floor(m.info.timestampNanos / 1000) });
					this.latest.set(key, value);
				}
			});
		})();
		let timer: NodeJS.Timeout | undefined;
		const late = new Promise<undefined>(resolve => (timer = setTimeout(() => resolve(undefined), 5000)));
		const messages = await Promise.race([creating.catch(() => undefined), late]);
		clearTimeout(timer);
		if (!messages || r.generation !== generation) {
			void creating
				.then(
					m => m.close(),
					() => undefined
				)
				.catch(() => undefined);
			if (!messages) this.log(`recorder: no consumer from ${seq} within 5 s; trying again`);
			return;
		}
		r.messages = messages;
		void messages.closed().then(err => {
			if (r.messages === messages && !this.closing) {
				this.log(`recorder: consumer closed (${err ? (err as Error).message : "no error"})`);
				r.messages = undefined;
			}
		});
	}

	/** Restarts a closed or stalled recorder; notes an origin whose sequence went back (acknowledged writes lost). */
	private async superviseRecorder(): Promise<void> {
		const r = this.recorder;
		if (!r || this.closing) return;
		// Taken before asking: a message delivered while the answer travels must not look like a regression.
		const before = r.lastSeq;
		let last: number;
		try {
			last = (await r.jsm.streams.info(this.stream)).state.last_seq;
		} catch {
			return; // the primary is down: nothing to record meanwhile
		}
		if (last < before) {
			this.originRegressions++;
			this.log(`recorder: the origin stream's last sequence went back from ${before} to ${last} (a restarted server lost acknowledged directory writes)`);
			r.lastSeq = last;
			await this.restartRecorder(last + 1);
			return;
		}
		// Stalled: behind the origin and not moving (a consumer lost with a restarted primary). Restart
		// soon, but only then: the stream keeps one message per key, so a change left unread while a
		// later one of the same key arrives is gone from the record for good.
		if (last <= r.lastSeq || r.stalled?.seq !== r.lastSeq) r.stalled = last > r.lastSeq ? { since: Date.now(), seq: r.lastSeq } : undefined;
		if (!r.messages || (r.stalled !== undefined && Date.now() - r.stalled.since > 1500)) {
			this.log(`recorder: ${r.messages ? "stalled" : "closed"} at ${r.lastSeq} (origin at ${last}); resuming from there`);
			await this.restartRecorder(r.lastSeq + 1);
		}
	}

	private async restartRecorder(seq: number): Promise<void> {
		const r = this.recorder!;
		const old = r.messages;
		r.messages = undefined;
		r.stalled = undefined;
		this.recorderRestarts++;
		await old?.close().catch(() => undefined);
		await this.consumeFrom(seq);
	}

	/**
	 * Waits (bounded) until the record holds everything the origin stream holds, so that the
	 * checker compares complete histories; false if it did not get there.
	 */
	async recorderCaughtUp(timeoutMs = 15_000): Promise<boolean> {
		const deadline = Date.now() + timeoutMs;
		for (;;) {
			try {
				const last = (await this.recorder!.jsm.streams.info(this.stream)).state.last_seq;
				if (this.recorder!.lastSeq >= last) return true;
			} catch {
				// not answering yet: try again
			}
			if (Date.now() > deadline) return false;
			await sleep(200);
		}
	}

	/** The user's home as the live record last saw it. */
	homeOf(userId: string): HomeEntry | undefined {
		return this.latest.get(`user.${userId}`);
	}

	/** The user's entry read from the origin stream itself (its leader in the hub), never a mirror. */
	originEntry(userId: string): Promise<HomeEntry | undefined> {
		return this.originGet<HomeEntry>(`user.${userId}`);
	}

	/** The user's move journal in the origin stream, if one is open. */
	originJournal(userId: string): Promise<{ moveId: string; step: string; owner: string } | undefined> {
		return this.originGet(`move.${userId}`);
	}

	private async originGet<T>(key: string): Promise<T | undefined> {
		try {
			const m = await this.recorder!.jsm.streams.getMessage(`KV_${this.bucket}`, { last_by_subj: `$KV.${this.bucket}.${key}` });
			const op = m.header?.get("KV-Operation");
			return op === "DEL" || op === "PURGE" ? undefined : m.json<T>();
		} catch (err) {
			if (/no message found|not found/i.test((err as Error).message)) return undefined;
			throw err;
		}
	}

	/** Registers `count` users spread over the regions, and waits until every region's nodes can look each one up. */
	async register(count: number): Promise<void> {
		const users: string[] = [];
		for (let i = 0; i < count; i++) {
			const region = REGIONS[i % REGIONS.length]!;
			const reply = await this.node(region, "aux").call(
				"sv-region.register",
				{ identities: [{ kind: "username", value: `chaos-${i}-${this.run}` }], country: COUNTRY[region] },
				15_000
			);
			if (!reply.ok) throw new Error(`register: ${reply.type} ${reply.message ?? ""}`);
			users.push(reply.res.userId as string);
		}
		// Mirrors trail the origin: a lookup of a user the local mirror has not heard of yet says USER_NOT_FOUND.
		const deadline = Date.now() + 30_000;
		for (const n of this.nodes)
			for (const userId of users)
				for (;;) {
					const reply = await n.call("sv-region.lookup", { userId }, 5000);
					if (reply.ok) break;
					if (Date.now() > deadline) throw new Error(`${n.key} never saw user ${userId}: ${reply.type}`);
					await sleep(100);
				}
		this.users = users;
	}

	/** Takes a region's NATS server down (SIGKILL) while at least one nemesis holds it. */
	holdNats(region: string): Promise<void> {
		this.natsHolds[region] = (this.natsHolds[region] ?? 0) + 1;
		return this.natsQueue(region, async () => {
			if (this.natsHolds[region]! === 0) return;
			this.natsRunning.delete(region);
			await this.cluster.kill(region);
		});
	}

	releaseNats(region: string): Promise<void> {
		this.natsHolds[region] = Math.max(0, (this.natsHolds[region] ?? 0) - 1);
		return this.natsQueue(region, () => this.natsUp(region));
	}

	natsDown(region: string): boolean {
		return (this.natsHolds[region] ?? 0) > 0;
	}

	private natsQueue(region: string, op: () => Promise<void>): Promise<void> {
		const next = (this.natsChain[region] ?? Promise.resolve()).then(op);
		this.natsChain[region] = next.catch(() => undefined);
		return next;
	}

	/** Servers running as far as the holds go (a hold kills; the last release restarts). */
	private readonly natsRunning = new Set(REGIONS);

	/** Starts a server that a hold took down, once no hold remains (a running one is left alone). */
	private async natsUp(region: string): Promise<void> {
		for (let attempt = 1; !this.natsRunning.has(region) && (this.natsHolds[region] ?? 0) === 0; attempt++) {
			try {
				await this.cluster.restart(region);
				this.natsRunning.add(region);
				return;
			} catch (err) {
				this.log(`nats ${region}: restart ${attempt} failed: ${(err as Error).message.split("\n")[0]}`);
				if (attempt >= 5) throw err;
				await sleep(1000);
			}
		}
	}

	/** Every fault removed: every server and node running again. */
	async healAll(): Promise<void> {
		for (const region of REGIONS) {
			this.natsHolds[region] = 0;
			await this.natsQueue(region, () => this.natsUp(region));
		}
		for (const n of this.nodes) n.holds = 0;
		await Promise.all(this.nodes.map(n => n.ensureUp()));
	}

	/** Reads every region's ledger rows and audit rows directly from its database. */
	async readTables(): Promise<{
		rows: Record<string, { opId: string; userId: string }[]>;
		audit: Record<string, { opId: string; userId: string; region: string; atUs: number }[]>;
	}> {
		const rows: Record<string, { opId: string; userId: string }[]> = {};
		const audit: Record<string, { opId: string; userId: string; region: string; atUs: number }[]> = {};
		for (const region of REGIONS) {
			const db = this.dbs[region]!;
			const [r] = await db.query<RowDataPacket[]>(`select op_id, user_id from ${LEDGER_TABLE}`);
			rows[region] = r.map(x => ({ opId: x.op_id as string, userId: x.user_id as string }));
			const [a] = await db.query<RowDataPacket[]>(`select op_id, user_id, region, cast(at_us as char) as at_us from ${AUDIT_TABLE}`);
			audit[region] = a.map(x => ({ opId: x.op_id as string, userId: x.user_id as string, region: x.region as string, atUs: Number(x.at_us) }));
		}
		return { rows, audit };
	}

	/** Kills every node, stops the recorder and the servers, drops the run's databases and Redis keys (kept with `keepDir`). */
	async stop(): Promise<void> {
		this.closing = true;
		for (const n of this.nodes) n.holds = 0;
		await Promise.allSettled(this.nodes.map(n => n.kill()));
		clearTimeout(this.recorderTimer);
		await this.recorder?.messages?.close().catch(() => undefined);
		await this.recorder?.nc.close().catch(() => undefined);
		await Promise.allSettled(Object.values(this.dbs).map(db => db.end()));
		if (this.keepDir) console.info(`kept for inspection: ${this.dir} and the databases ${REGIONS.map(r => realStores(this.run, r).sql).join(", ")}`);
		else await Promise.allSettled(REGIONS.map(region => cleanupRealStores(realStores(this.run, region))));
		await this.cluster?.stop();
		if (!this.keepDir) rmSync(this.dir, { recursive: true, force: true });
	}
}
