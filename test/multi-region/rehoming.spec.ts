import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import type { Connection, RowDataPacket } from "mysql2/promise";
import { createConnection } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HomeEntry } from "../../regions/directory/entries.ts";
import { userKey } from "../../regions/directory/entries.ts";
import { mirrorEventLine } from "../../regions/directory/mirror-watchdog.ts";
import type { MoveRecord } from "../../regions/rehoming.ts";
import { moveKey } from "../../regions/rehoming.ts";
import type { EdgeTopology } from "../harness/edge-topology.ts";
import { startEdgeTopology } from "../harness/edge-topology.ts";
import type { KvNode } from "../harness/kv-node.ts";
import { startKvNode } from "../harness/kv-node.ts";
import { notesService } from "../harness/notes.service.ts";
import { cleanupRealStores, realStores, runId } from "../harness/real-servers.ts";

const PRIMARY = "cn-east";
const TARGET = "eu-central";
const REGIONS = [PRIMARY, "ap-south", TARGET];
/** Where the writing client and the killable mover live: a region the moves neither leave nor enter, so a dead mover's stale registration there never receives a recovery call. */
const SIDE = "ap-south";
const MOVER_NODE = fileURLToPath(new URL("../harness/mover-node.ts", import.meta.url));
/** The recovery sweep takes a move over 5 s after its last journal write and looks every 2 s. */
const CONVERGE_MS = 15_000;

interface Registered extends HomeEntry {
	userId: string;
}

/** A mover node in its own process, to be SIGKILLed mid-move. */
interface MoverProcess {
	nodeID: string;
	send(line: string): void;
	/** Resolves with the first output line matching `pattern`, past or future. */
	line(pattern: RegExp, timeoutMs?: number): Promise<string>;
	kill(): Promise<void>;
}

describe("rehoming on a three-region NATS supercluster with real MariaDB per region", () => {
	const run = runId();
	const bucket = `homes-${run}`;
	const namespacePrefix = `rh-${run}-`;
	const blindIndexKey = randomBytes(32);
	let cluster: EdgeTopology | undefined;
	const nodes: Record<string, KvNode> = {};
	const dbs: Record<string, Connection> = {};
	const children = new Set<ChildProcess>();
	const timings: Record<string, number> = {};
	/** What each region's mirror watchdog saw, printed at the end: a mirror behind or made anew explains a surprising read. */
	const mirrorEvents: string[] = [];
	let seq = 0;

	const call = <T = any>(region: string, action: string, params: unknown, opts?: { timeout: number }) =>
		nodes[region]!.node.broker.call<T, unknown>(action, params, opts);
	const eventually = <T>(read: () => Promise<T> | T, timeout = CONVERGE_MS) => expect.poll(read, { timeout, interval: 100 });
	/** The user's move journal, read on the directory's origin: what is left of a move in progress. */
	const journal = async (userId: string) => (await nodes[PRIMARY]!.store.get<MoveRecord>(moveKey(userId), { authoritative: true }))?.value ?? null;

	/** Registers a user on the primary's node and waits until every region's mirror knows it (movers read their own). */
	async function register(country: string): Promise<Registered> {
		const user = await call<Registered>(PRIMARY, "sv-region.register", { identities: [{ kind: "username", value: `rehome-${++seq}-${run}` }], country });
		for (const region of REGIONS)
			await eventually(() => call(region, "sv-region.lookup", { userId: user.userId }).catch(err => err)).toMatchObject({ userId: user.userId });
		return user;
	}

	/** The user's note texts in one region's database, read past the services, sorted. */
	async function textsIn(region: string, userId: string): Promise<string[]> {
		const [rows] = await dbs[region]!.query<RowDataPacket[]>("select text from notes where user_id = ?", [userId]);
		return rows.map(r => r.text as string).sort();
	}

	async function rowCounts(userId: string): Promise<Record<string, number>> {
		const out: Record<string, number> = {};
		for (const region of REGIONS) out[region] = (await textsIn(region, userId)).length;
		return out;
	}

	/** Every region's node names the same home, once its mirror has caught up. */
	async function homedEverywhere(userId: string, region: string, epoch: number): Promise<void> {
		for (const from of REGIONS)
			await eventually(() => call(from, "sv-region.lookup", { userId }).catch(err => err)).toEqual({ userId, region, epoch, state: "active", pinned: false });
	}

	async function startMover(env: Record<string, string>): Promise<MoverProcess> {
		const proc = spawn(process.execPath, [MOVER_NODE], {
			env: {
				...process.env,
				MOVER_NODE_REGION: SIDE,
				MOVER_NODE_NATS_URL: cluster!.urls[SIDE]!,
				MOVER_NODE_BUCKET: bucket,
				MOVER_NODE_HUB_REPLICAS: String(cluster!.placement(SIDE).originReplicas),
				MOVER_NODE_RUN: run,
				EDGEHOME_NAMESPACE_PREFIX: namespacePrefix,
				EDGEHOME_BLIND_INDEX_KEY: blindIndexKey.toString("base64"),
				...env
			},
			stdio: ["pipe", "pipe", "pipe"]
		});
		children.add(proc);
		const exited = once(proc, "exit");
		const lines: string[] = [];
		let stderr = "";
		proc.stderr!.on("data", d => (stderr += d));
		createInterface({ input: proc.stdout! }).on("line", l => lines.push(l));
		const line = async (pattern: RegExp, timeoutMs = 20_000) => {
			const deadline = Date.now() + timeoutMs;
			for (;;) {
				const found = lines.find(l => pattern.test(l));
				if (found) return found;
				if (proc.exitCode !== null || proc.signalCode !== null || Date.now() > deadline)
					throw new Error(`mover node: no line like ${pattern} (exit ${proc.exitCode ?? proc.signalCode}); stdout: ${lines.join(" | ")}; stderr: ${stderr}`);
				await sleep(20);
			}
		};
		const ready = await line(/^ready /, 30_000);
		return {
			nodeID: ready.slice("ready ".length),
			send: l => proc.stdin!.write(`${l}\n`),
			line,
			async kill() {
				if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
				await exited;
				children.delete(proc);
			}
		};
	}

	beforeAll(async () => {
		cluster = await startEdgeTopology(REGIONS);
		const start = async (region: string) => {
			nodes[region] = await startKvNode({
				region,
				natsUrl: cluster!.urls[region]!,
				bucket,
				hubReplicas: cluster!.placement(region).originReplicas,
				namespacePrefix,
				blindIndexKey,
				services: ["sv-region"],
				schemas: [notesService],
				stores: realStores(run, region),
				onMirrorEvent: e => mirrorEvents.push(`${region}: ${mirrorEventLine(e).line}`)
			});
			dbs[region] = await createConnection({ uri: realStores(run, region).sql });
		};
		const started = await Promise.allSettled(REGIONS.map(start));
		const failed = started.find(s => s.status === "rejected");
		if (failed) throw failed.reason;
	});

	afterAll(async () => {
		try {
			await Promise.allSettled(
				[...children].map(async proc => {
					const gone = once(proc, "exit");
					if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
					await gone;
				})
			);
			await Promise.allSettled(Object.values(nodes).map(n => n.stop()));
			await Promise.allSettled(Object.values(dbs).map(db => db.end()));
			await Promise.all(REGIONS.map(region => cleanupRealStores(realStores(run, region))));
		} finally {
			await cluster?.stop();
		}
		console.info(`rehoming timings (ms): ${JSON.stringify(timings)}; mirror events: ${mirrorEvents.join("; ") || "none"}`);
	});

	it("moves a user written to continuously from another region: every acknowledged write lands once in the new home, nothing stays behind", async () => {
		const { userId } = await register("JP");
		const acked: string[] = [];
		const ackedIn: Record<string, number> = {};
		let refused = 0;
		let writing = true;
		let stopped = false;
		// A few writers, each awaiting its own writes: more than one write is in flight when the user is marked moving.
		const writer = async (w: number) => {
			try {
				for (let i = 0; writing; i++) {
					// Yield between writes so the mover and the change feeds get their turn.
					await sleep(2);
					const text = `w${w}-${i}`;
					try {
						const res = await call<{ region: string }>(SIDE, "notes.add", { userId, text });
						acked.push(text);
						ackedIn[res.region] = (ackedIn[res.region] ?? 0) + 1;
					} catch (err) {
						// A write refused while the user moves was not run: the client retries later.
						if ((err as { type?: string }).type !== "USER_MOVING") throw err;
						refused++;
					}
				}
			} finally {
				stopped = true;
			}
		};
		const writers = Promise.all([0, 1, 2].map(writer));
		const untilAcked = async (n: number) => {
			const deadline = Date.now() + 20_000;
			while (acked.length < n && !stopped && Date.now() < deadline) await sleep(20);
		};

		let res: unknown;
		try {
			await untilAcked(30);
			const started = Date.now();
			res = await call(TARGET, "sv-region.move", { userId, to: TARGET }, { timeout: 60_000 });
			timings.moveUnderLoad = Date.now() - started;
			await untilAcked(acked.length + 30);
		} finally {
			writing = false;
			await writers;
		}

		expect(res).toMatchObject({ userId, from: PRIMARY, to: TARGET, epoch: 2 });
		// The load really spanned the move: writes were served in the old home and then in the new one.
		expect(ackedIn[PRIMARY]).toBeGreaterThanOrEqual(30);
		expect(ackedIn[TARGET]).toBeGreaterThanOrEqual(30);
		timings.writesAcked = acked.length;
		timings.writesRefusedMoving = refused;

		const all = [...acked].sort();
		expect(await textsIn(TARGET, userId)).toEqual(all);
		expect(await textsIn(PRIMARY, userId)).toEqual([]);
		expect(await textsIn(SIDE, userId)).toEqual([]);
		await homedEverywhere(userId, TARGET, 2);
		for (const from of REGIONS) {
			const listed = await call<{ text: string }[]>(from, "notes.list", { userId });
			expect(listed.map(n => n.text).sort(), `notes.list from ${from}`).toEqual(all);
		}
		expect(await journal(userId)).toBeNull();
	}, 60_000);

	describe("a mover killed mid-move, in its own process", () => {
		const NOTES = ["n0", "n1", "n2", "n3", "n4"];

		/**
		 * Starts a move of a fresh cn-east user with five notes on a mover process, SIGKILLs it once
		 * the journal stands at `step` with the mover still its owner, and says what the kill left.
		 */
		async function killMoverAt(step: MoveRecord["step"], env: Record<string, string>, hold?: string) {
			const { userId } = await register("JP");
			for (const text of NOTES) await call(SIDE, "notes.add", { userId, text });
			const mover = await startMover(hold ? { ...env, MOVER_HOLD: hold } : env);
			mover.send(`move ${userId} ${TARGET}`);
			if (hold) await mover.line(new RegExp(`^held ${hold}$`));
			await eventually(() => journal(userId), 10_000).toMatchObject({ step, owner: mover.nodeID });
			await mover.kill();
			const killedAt = Date.now();
			// Still as the kill left it: nobody took the move over while the mover lived.
			expect(await journal(userId)).toMatchObject({ step, owner: mover.nodeID, from: PRIMARY, to: TARGET, epoch: 1 });
			return { userId, killedAt, rowsAtKill: await rowCounts(userId) };
		}

		/** The surviving nodes' sweep ends the move, within CONVERGE_MS of the kill. */
		async function converged(userId: string, killedAt: number, name: string) {
			await eventually(() => journal(userId)).toBeNull();
			timings[name] = Date.now() - killedAt;
			expect(timings[name]).toBeLessThan(CONVERGE_MS);
		}

		it("while the user is marked moving (settling, nothing copied): the sweep rolls the move back", async () => {
			// A settle far longer than the kill takes to land; the kill comes well before the sweep's 5 s.
			const { userId, killedAt, rowsAtKill } = await killMoverAt("moving", { EDGEHOME_MOVE_SETTLE_MS: "20000" });
			expect(rowsAtKill).toEqual({ [PRIMARY]: 5, [SIDE]: 0, [TARGET]: 0 });
			await converged(userId, killedAt, "recoveredFromSettle");
			await homedEverywhere(userId, PRIMARY, 1);
			expect(await textsIn(PRIMARY, userId)).toEqual(NOTES);
			expect(await rowCounts(userId)).toEqual({ [PRIMARY]: 5, [SIDE]: 0, [TARGET]: 0 });
			// Writable again, in its one home.
			await expect(call(SIDE, "notes.add", { userId, text: "n5" })).resolves.toMatchObject({ region: PRIMARY });
			expect(await rowCounts(userId)).toEqual({ [PRIMARY]: 6, [SIDE]: 0, [TARGET]: 0 });
		}, 45_000);

		it("with the rows copied but the journal still at moving: the sweep rolls back and removes the copy", async () => {
			const { userId, killedAt, rowsAtKill } = await killMoverAt("moving", {}, "before-copied");
			expect(rowsAtKill).toEqual({ [PRIMARY]: 5, [SIDE]: 0, [TARGET]: 5 });
			await converged(userId, killedAt, "recoveredFromCopyDone");
			await homedEverywhere(userId, PRIMARY, 1);
			expect(await textsIn(PRIMARY, userId)).toEqual(NOTES);
			expect(await rowCounts(userId)).toEqual({ [PRIMARY]: 5, [SIDE]: 0, [TARGET]: 0 });
			await expect(call(SIDE, "notes.add", { userId, text: "n5" })).resolves.toMatchObject({ region: PRIMARY });
		}, 45_000);

		it("after the journal says copied: the sweep finishes the move", async () => {
			const { userId, killedAt, rowsAtKill } = await killMoverAt("copied", {}, "after-copied");
			expect(rowsAtKill).toEqual({ [PRIMARY]: 5, [SIDE]: 0, [TARGET]: 5 });
			await converged(userId, killedAt, "recoveredFromCopied");
			await homedEverywhere(userId, TARGET, 2);
			expect(await textsIn(TARGET, userId)).toEqual(NOTES);
			expect(await rowCounts(userId)).toEqual({ [PRIMARY]: 0, [SIDE]: 0, [TARGET]: 5 });
			await expect(call(SIDE, "notes.add", { userId, text: "n5" })).resolves.toMatchObject({ region: TARGET });
		}, 45_000);

		it("after the home flipped, with the journal still at copied: the sweep finishes the move", async () => {
			const { userId, killedAt, rowsAtKill } = await killMoverAt("copied", {}, "after-flip");
			expect(rowsAtKill).toEqual({ [PRIMARY]: 5, [SIDE]: 0, [TARGET]: 5 });
			expect(await nodes[PRIMARY]!.store.get(userKey(userId))).toMatchObject({ value: { region: TARGET, epoch: 2, state: "active" } });
			await converged(userId, killedAt, "recoveredFromFlipped");
			await homedEverywhere(userId, TARGET, 2);
			expect(await textsIn(TARGET, userId)).toEqual(NOTES);
			expect(await rowCounts(userId)).toEqual({ [PRIMARY]: 0, [SIDE]: 0, [TARGET]: 5 });
		}, 45_000);
	});

	it("refuses to move a pinned user out of its jurisdiction, changing nothing", async () => {
		const { userId, pinned, region } = await register("DE");
		expect({ pinned, region }).toEqual({ pinned: true, region: TARGET });
		await call(SIDE, "notes.add", { userId, text: "stays" });
		const before = await nodes[PRIMARY]!.store.get(userKey(userId));
		await expect(call(PRIMARY, "sv-region.move", { userId, to: PRIMARY }, { timeout: 60_000 })).rejects.toMatchObject({
			type: "RESIDENCY_VIOLATION",
			code: 403
		});
		expect(await nodes[PRIMARY]!.store.get(userKey(userId))).toEqual(before);
		expect(await journal(userId)).toBeNull();
		expect(await textsIn(TARGET, userId)).toEqual(["stays"]);
		expect(await rowCounts(userId)).toEqual({ [PRIMARY]: 0, [SIDE]: 0, [TARGET]: 1 });
	});
});
