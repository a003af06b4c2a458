import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { RegionNode } from "../../../app/node.ts";
import type { HomeEntry } from "../../../regions/directory/entries.ts";
import { userKey } from "../../../regions/directory/entries.ts";
import type { DirectoryStore } from "../../../regions/directory/store.ts";
import type { MoveRecord } from "../../../regions/rehoming.ts";
import { Mover, moveKey } from "../../../regions/rehoming.ts";
import { regionRuntimeOf } from "../../../regions/runtime/region-runtime.ts";
import type { EmbeddedRegions } from "../../harness/embedded-regions.ts";
import { REGION_IDS as ids, startEmbeddedRegions } from "../../harness/embedded-regions.ts";
import { notesService } from "../../harness/notes.service.ts";
import { within } from "../../harness/waiting.ts";

const nodes: Record<string, RegionNode> = {};
let store: DirectoryStore;
let cluster: EmbeddedRegions | undefined;
let seq = 0;

const node = (id: string) => nodes[id]!;
const call = <T = any>(from: string, action: string, params: unknown) => node(from).broker.call<T, unknown>(action, params);
const moverOn = (id: string, settleMs: number) => new Mover({ runtime: regionRuntimeOf(node(id).broker), participants: ["notes"], settleMs, staleMs: 600 });
const moverOf = (id: string) => (node(id).broker.getLocalService("sv-region") as unknown as { mover: Mover }).mover;

async function register(country?: string): Promise<string> {
	const res = await call("cn-east", "sv-region.register", { identities: [{ kind: "username", value: `mover-${++seq}` }], ...(country ? { country } : {}) });
	return res.userId;
}

/** Rows of `userId` in each region's own database. */
async function rowsByRegion(userId: string): Promise<Record<string, number>> {
	const out: Record<string, number> = {};
	for (const id of ids) out[id] = (await node(id).stores.sql.db.selectFrom("notes").selectAll().where("user_id", "=", userId).execute()).length;
	return out;
}

beforeAll(async () => {
	cluster = await startEmbeddedRegions({ namespacePrefix: "rehome-", services: ["sv-region"], schemas: [notesService] });
	Object.assign(nodes, cluster.nodes);
	store = cluster.store;
});

afterAll(() => cluster?.stop());

describe("rehoming", () => {
	it("moves a user's rows to the new home, bumps the epoch, and leaves nothing behind", async () => {
		const userId = await register("JP");
		for (let i = 0; i < 5; i++) await call("eu-central", "notes.add", { userId, text: `note ${i}` });
		expect(await rowsByRegion(userId)).toEqual({ "cn-east": 5, "ap-south": 0, "eu-central": 0 });

		const res = await call("eu-central", "sv-region.move", { userId, to: "ap-south" });
		expect(res).toMatchObject({ userId, from: "cn-east", to: "ap-south", epoch: 2 });
		expect(await rowsByRegion(userId)).toEqual({ "cn-east": 0, "ap-south": 5, "eu-central": 0 });
		expect(await call("cn-east", "sv-region.lookup", { userId })).toMatchObject({ region: "ap-south", epoch: 2, state: "active" });
		for (const from of ids) {
			const list = await call<{ text: string }[]>(from, "notes.list", { userId });
			// Notes written within one millisecond have no defined order: compare as sets.
			expect(list.map(n => n.text).sort()).toEqual(["note 0", "note 1", "note 2", "note 3", "note 4"]);
		}
		await call("cn-east", "notes.add", { userId, text: "after" });
		expect(await rowsByRegion(userId)).toEqual({ "cn-east": 0, "ap-south": 6, "eu-central": 0 });
		expect(await store.get(moveKey(userId))).toBeUndefined();
	});

	it("keeps every acknowledged write of a client writing throughout the move", async () => {
		const userId = await register("SG");
		const acked: string[] = [];
		let writing = true;
		const writer = (async () => {
			for (let i = 0; writing; i++) {
				// Embedded calls can complete on microtasks alone; yield so the move's timers run.
				await new Promise(r => setImmediate(r));
				const text = `w${i}`;
				try {
					await call("eu-central", "notes.add", { userId, text });
					acked.push(text);
				} catch (err) {
					if ((err as { type?: string }).type !== "USER_MOVING") throw err;
				}
			}
		})();
		await new Promise(r => setTimeout(r, 300));
		await call("cn-east", "sv-region.move", { userId, to: "eu-central" });
		await new Promise(r => setTimeout(r, 300));
		writing = false;
		await writer;
		const stored = (await node("eu-central").stores.sql.db.selectFrom("notes").select("text").where("user_id", "=", userId).execute()).map(r => r.text);
		expect(acked.length).toBeGreaterThan(20);
		expect(new Set(stored)).toEqual(new Set(acked));
		expect(stored).toHaveLength(acked.length);
		expect(await rowsByRegion(userId)).toMatchObject({ "ap-south": 0, "cn-east": 0 });
	});

	it("refuses to move a pinned user out of its jurisdiction, changing nothing", async () => {
		const userId = await register("DE");
		await call("cn-east", "notes.add", { userId, text: "stays" });
		const before = await store.get(userKey(userId));
		await expect(call("cn-east", "sv-region.move", { userId, to: "cn-east" })).rejects.toMatchObject({ type: "RESIDENCY_VIOLATION", code: 403 });
		expect(await store.get(userKey(userId))).toEqual(before);
		expect(await rowsByRegion(userId)).toEqual({ "cn-east": 0, "ap-south": 0, "eu-central": 1 });
		expect(await store.get(moveKey(userId))).toBeUndefined();
	});

	it("rolls back a move whose copy fails: the user stays home, active, with its rows", async () => {
		const userId = await register("JP");
		await call("ap-south", "notes.add", { userId, text: "keep" });
		const target = node("eu-central").broker.getLocalService("notes") as unknown as { moveImport: (...a: unknown[]) => Promise<void> };
		const original = target.moveImport;
		target.moveImport = async () => {
			throw new Error("disk full");
		};
		try {
			await expect(call("cn-east", "sv-region.move", { userId, to: "eu-central" })).rejects.toMatchObject({ type: "MOVE_FAILED" });
		} finally {
			target.moveImport = original;
		}
		expect(await call("ap-south", "sv-region.lookup", { userId })).toMatchObject({ region: "cn-east", epoch: 1, state: "active" });
		expect(await rowsByRegion(userId)).toEqual({ "cn-east": 1, "ap-south": 0, "eu-central": 0 });
		await expect(call("ap-south", "notes.add", { userId, text: "still writable" })).resolves.toMatchObject({ region: "cn-east" });
	});

	it("refuses a second move of the same user while one is in progress", async () => {
		const userId = await register("JP");
		const first = moverOn("cn-east", 500).move(userId, "ap-south");
		await new Promise(r => setTimeout(r, 50));
		await expect(call("ap-south", "sv-region.move", { userId, to: "eu-central" })).rejects.toMatchObject({ type: "MOVE_IN_PROGRESS", code: 409 });
		await first;
		expect(await call("cn-east", "sv-region.lookup", { userId })).toMatchObject({ region: "ap-south", epoch: 2 });
	});

	it("keeps a slow move's journal fresh, so no other node takes a live move over", async () => {
		const userId = await register("JP");
		await call("cn-east", "notes.add", { userId, text: "slow" });
		const moving = moverOn("cn-east", 2000).move(userId, "ap-south");
		await new Promise(r => setTimeout(r, 1200));
		expect(await moverOn("eu-central", 0).recover()).toBe(0);
		await expect(moving).resolves.toMatchObject({ step: "flipped", to: "ap-south" });
		expect(await rowsByRegion(userId)).toEqual({ "cn-east": 0, "ap-south": 1, "eu-central": 0 });
	});

	it("waits for a write already admitted in the old home before copying, so it is not lost", async () => {
		const userId = await register("JP");
		const slowWrite = call("ap-south", "notes.add", { userId, text: "in flight", delayMs: 400 });
		await new Promise(r => setTimeout(r, 100));
		const mover = new Mover({ runtime: regionRuntimeOf(node("ap-south").broker), participants: ["notes"], settleMs: 0 });
		const moved = mover.move(userId, "eu-central");
		await expect(slowWrite).resolves.toMatchObject({ region: "cn-east" });
		await expect(moved).resolves.toMatchObject({ step: "flipped" });
		expect(await rowsByRegion(userId)).toEqual({ "cn-east": 0, "ap-south": 0, "eu-central": 1 });
	});

	describe("a mover that crashed", () => {
		async function crashedMove(step: MoveRecord["step"]) {
			const userId = await register("JP");
			await call("cn-east", "notes.add", { userId, text: "precious" });
			const entry = (await store.get<HomeEntry>(userKey(userId)))!;
			await store.update(userKey(userId), { ...entry.value, state: "moving" }, entry.revision);
			// What the crashed mover got done: the old home frozen, the new one receiving, the rows copied.
			const moveId = randomUUID();
			await call("eu-central", "sv-region.handover", { region: "cn-east", userId, step: "freeze", epoch: 1, moveId });
			await call("eu-central", "sv-region.handover", { region: "ap-south", userId, step: "receive", epoch: 2, moveId });
			const rows = await call("cn-east", "notes.move.export", { userId });
			await call("ap-south", "notes.move.import", { userId, moveId, rows });
			const record: MoveRecord = {
				moveId,
				userId,
				from: "cn-east",
				to: "ap-south",
				step,
				epoch: 1,
				participants: ["notes"],
				owner: "gone-node",
				heartbeat: Date.now() - 60_000,
				startedAt: Date.now() - 60_000
			};
			await store.create(moveKey(userId), record);
			return userId;
		}

		it("before the flip is rolled back by the next recovery sweep", async () => {
			const userId = await crashedMove("moving");
			expect(await moverOf("eu-central").recover()).toBeGreaterThanOrEqual(1);
			expect(await call("ap-south", "sv-region.lookup", { userId })).toMatchObject({ region: "cn-east", epoch: 1, state: "active" });
			expect(await rowsByRegion(userId)).toEqual({ "cn-east": 1, "ap-south": 0, "eu-central": 0 });
			expect(await store.get(moveKey(userId))).toBeUndefined();
		});

		it("is found by the background sweeps through the change feed, which do not list the journal every tick", async () => {
			const lists = vi.spyOn(store, "list");
			try {
				// Three nodes sweep every 2 s: listing each tick would be six lists or more in 4.5 s.
				await new Promise(r => setTimeout(r, 4500));
				expect(lists.mock.calls.length).toBeLessThanOrEqual(3);
				const userId = await crashedMove("moving");
				await within(async () => (await store.get(moveKey(userId))) === undefined, 6000);
				expect(await call("ap-south", "sv-region.lookup", { userId })).toMatchObject({ region: "cn-east", epoch: 1, state: "active" });
				expect(await rowsByRegion(userId)).toEqual({ "cn-east": 1, "ap-south": 0, "eu-central": 0 });
			} finally {
				lists.mockRestore();
			}
		});

		it("after the copy is finished by the next recovery sweep", async () => {
			const userId = await crashedMove("copied");
			expect(await moverOf("eu-central").recover()).toBeGreaterThanOrEqual(1);
			expect(await call("cn-east", "sv-region.lookup", { userId })).toMatchObject({ region: "ap-south", epoch: 2, state: "active" });
			expect(await rowsByRegion(userId)).toEqual({ "cn-east": 0, "ap-south": 1, "eu-central": 0 });
			expect(await store.get(moveKey(userId))).toBeUndefined();
		});
	});

	describe("bad input", () => {
		it("refuses an unknown region and an unknown user, changing nothing", async () => {
			const userId = await register("JP");
			const before = await store.get(userKey(userId));
			await expect(call("cn-east", "sv-region.move", { userId, to: "mars-1" })).rejects.toMatchObject({ type: "UNKNOWN_REGION", code: 422 });
			await expect(call("cn-east", "sv-region.move", { userId: "0".repeat(26), to: "ap-south" })).rejects.toMatchObject({ type: "USER_NOT_FOUND" });
			await expect(call("cn-east", "sv-region.move", { userId, to: "ap-south", force: true })).rejects.toMatchObject({ type: "VALIDATION_ERROR" });
			expect(await store.get(userKey(userId))).toEqual(before);
		});
	});
});
