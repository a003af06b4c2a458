import { describe, expect, it } from "vitest";
import type { HomeEntry } from "../../../regions/directory/entries.ts";
import { newUserId, userKey } from "../../../regions/directory/entries.ts";
import { openSqliteDirectory } from "../../../regions/directory/sqlite-store.ts";
import type { DirectoryStore, ReadOptions } from "../../../regions/directory/store.ts";
import type { MoveRecord } from "../../../regions/rehoming.ts";
import { moveKey } from "../../../regions/rehoming.ts";
import type { MoveHold } from "../../harness/holding-store.ts";
import { holdingStore } from "../../harness/holding-store.ts";
import { passThrough } from "../../harness/pass-through-store.ts";

/** The killable mover's directory (rehoming.spec.ts): it must change nothing but where the move freezes. */
describe("a mover's holding directory", () => {
	async function setUp(hold: MoveHold | undefined) {
		const inner = openSqliteDirectory(":memory:");
		const reads: (ReadOptions | undefined)[] = [];
		const recording: DirectoryStore = {
			...passThrough(inner),
			get: (key, opts) => {
				reads.push(opts);
				return inner.get(key, opts);
			}
		};
		let held = 0;
		const store = holdingStore(recording, hold, () => held++);
		const userId = newUserId();
		const home: HomeEntry = { region: "cn-east", epoch: 1, state: "active", pinned: false };
		const homeRevision = await store.create(userKey(userId), home);
		const journal: MoveRecord = {
			moveId: "m1",
			userId,
			from: "cn-east",
			to: "eu-central",
			step: "moving",
			epoch: 1,
			participants: [],
			owner: "mover",
			heartbeat: 0,
			startedAt: 0
		};
		const journalRevision = await store.create(moveKey(userId), journal);
		return { inner, store, reads, userId, home, homeRevision, journal, journalRevision, held: () => held };
	}
	const pending = async (p: Promise<unknown>) => (await Promise.race([p.then(() => "settled"), new Promise(r => setTimeout(r, 50, "pending"))])) === "pending";

	it("passes a read's options through: an authoritative read stays authoritative", async () => {
		const { store, reads, userId } = await setUp("after-copied");
		await store.get(userKey(userId), { authoritative: true });
		await store.get(userKey(userId));
		expect(reads).toEqual([{ authoritative: true }, undefined]);
	});

	it("freezes after the journal's copied step is written, or before it; without a hold, never", async () => {
		for (const [hold, written, frozen] of [
			["after-copied", true, true],
			["before-copied", false, true],
			[undefined, true, false]
		] as const) {
			const { inner, store, userId, journal, journalRevision, held } = await setUp(hold);
			const update = store.update(moveKey(userId), { ...journal, step: "copied" }, journalRevision);
			expect(await pending(update), String(hold)).toBe(frozen);
			expect(held(), String(hold)).toBe(frozen ? 1 : 0);
			expect((await inner.get<MoveRecord>(moveKey(userId)))?.value.step, String(hold)).toBe(written ? "copied" : "moving");
		}
	});

	it("freezes after the flip of the home it moves, not at another update of the user", async () => {
		const { inner, store, userId, home, homeRevision, held } = await setUp("after-flip");
		const marked = await store.update(userKey(userId), { ...home, state: "moving" }, homeRevision);
		expect(held()).toBe(0);
		const flip = store.update(userKey(userId), { ...home, region: "eu-central", epoch: 2 }, marked);
		expect(await pending(flip)).toBe(true);
		expect(held()).toBe(1);
		expect((await inner.get<HomeEntry>(userKey(userId)))?.value).toMatchObject({ region: "eu-central", epoch: 2 });
	});
});
