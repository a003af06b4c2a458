import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CheckpointKeys } from "../../../../services/sv-log/chain.ts";
import { signCheckpoint, verifyChain } from "../../../../services/sv-log/chain.ts";
import { ChainConflictError } from "../../../../services/sv-log/errors.ts";
import type { Entry } from "../../../../services/sv-log/ingester.ts";
import type { LogRecord } from "../../../../services/sv-log/record.ts";
import { GENESIS, hashOf } from "../../../../services/sv-log/record.ts";
import type { LogStore } from "../../../../services/sv-log/store.ts";

export interface OpenedLogStore {
	store: LogStore;
	/** Changes a stored record's field behind the store's back, as someone with database access would. */
	tamper(region: string, seq: number, change: { actor: string }): Promise<void>;
	cleanup(): Promise<void>;
}

const KEYS: CheckpointKeys = [{ kid: "t1", key: Buffer.alloc(32, 9) }];
const T0 = Date.parse("2025-03-01T00:00:00Z");

/** Records linked after `head`, as the ingester links them. */
export function chainOf(region: string, entries: Partial<Entry>[], head?: { seq: number; hash: string }): LogRecord[] {
	let seq = head?.seq ?? 0;
	let prevHash = head?.hash ?? GENESIS;
	return entries.map((e, i) => {
		const linked = {
			id: `${region}-${seq + 1}-${i}`,
			at: T0 + (seq + 1) * 1000,
			actor: "0".repeat(26),
			action: "auth.login",
			target: null,
			outcome: "success" as const,
			requestId: null,
			traceId: null,
			ipHash: null,
			detail: null,
			...e,
			region,
			seq: ++seq,
			loggedAt: T0,
			prevHash
		};
		const record = { ...linked, hash: hashOf(linked) };
		prevHash = record.hash;
		return record;
	});
}

/** One suite for every audit store: what sv-log relies on a store to do. */
export function logStoreContract(name: string, open: () => Promise<OpenedLogStore>): void {
	describe(`the audit log store on ${name}`, () => {
		let opened: OpenedLogStore;
		let store: LogStore;
		let n = 0;
		/** A fresh region name per test: chains never share records. */
		const region = () => `r${++n}-${Date.now().toString(36)}`;

		beforeAll(async () => {
			opened = await open();
			store = opened.store;
		});
		afterAll(() => opened?.cleanup());

		it("appends in order and reads back exactly what it stored, so each hash still holds", async () => {
			const r = region();
			await store.prepare(r, 86_400_000);
			expect(await store.head(r)).toBeUndefined();
			const records = chainOf(r, [
				{ detail: { client: "www", nested: { a: [1, "x"] } }, target: "t1", requestId: "req-1", traceId: "a".repeat(32), ipHash: "f".repeat(64) },
				{},
				{}
			]);
			await store.prepareAppend(r, records)();
			expect(await store.head(r)).toEqual({ seq: 3, hash: records[2]!.hash });
			const read = await store.scan(r, 0, 10);
			expect(read).toEqual(records);
			for (const rec of read) expect(hashOf(rec)).toBe(rec.hash);
			expect(await store.scan(r, 1, 1)).toEqual([records[1]]);
			expect(await store.at(r, 2)).toEqual(records[1]);
			expect((await verifyChain(store, r, KEYS, 2)).ok).toBe(true);
		});

		it("refuses a position or record id already taken, leaving a chain that still verifies", async () => {
			const r = region();
			await store.prepare(r, 86_400_000);
			const first = chainOf(r, [{}, {}]);
			await store.prepareAppend(r, first)();
			const again = chainOf(r, [{ actor: "someone-else" }]);
			await expect(store.prepareAppend(r, again)()).rejects.toBeInstanceOf(ChainConflictError);
			const next = chainOf(r, [{ id: first[0]!.id }], { seq: 2, hash: first[1]!.hash });
			await expect(store.prepareAppend(r, next)()).rejects.toBeInstanceOf(ChainConflictError);
			expect([...(await store.existing(r, [first[0]!.id, "nope"]))]).toEqual([first[0]!.id]);
			expect(await store.scan(r, 0, 10)).toEqual(first);
			expect((await verifyChain(store, r, KEYS, 10)).ok).toBe(true);
		});

		it("finds records by actor, target, action, request id, user and time, newest first, page after page", async () => {
			const r = region();
			await store.prepare(r, 86_400_000);
			const ann = "a".repeat(26);
			const bob = "b".repeat(26);
			await store.prepareAppend(
				r,
				chainOf(r, [
					{ actor: ann, action: "auth.login", requestId: "q1" },
					{ actor: bob, action: "auth.login" },
					{ actor: "operator:ops", action: "money.adjust", target: ann, requestId: "q2" },
					{ actor: ann, action: "auth.logout", at: T0 + 10_000 },
					{ actor: bob, action: "money.freeze", target: bob, at: T0 + 10_000 }
				])
			)();
			const seqs = async (f: Parameters<LogStore["query"]>[1], limit = 10) => (await store.query(r, f, limit)).map(x => x.seq);
			expect(await seqs({})).toEqual([5, 4, 3, 2, 1]);
			expect(await seqs({ actor: ann })).toEqual([4, 1]);
			expect(await seqs({ target: ann })).toEqual([3]);
			expect(await seqs({ action: "auth.login" })).toEqual([2, 1]);
			expect(await seqs({ actions: ["auth.logout", "money.adjust"] })).toEqual([4, 3]);
			expect(await seqs({ requestId: "q2" })).toEqual([3]);
			expect(await seqs({ user: ann })).toEqual([4, 3, 1]);
			expect(await seqs({ from: T0 + 2000, to: T0 + 4000 })).toEqual([3, 2]);
			// Pages: two records each, after the last one shown (same time: by seq; other regions sort around it).
			const page1 = await store.query(r, {}, 2);
			expect(page1.map(x => x.seq)).toEqual([5, 4]);
			expect(await seqs({ after: { at: page1[1]!.at, region: r, seq: page1[1]!.seq } }, 2)).toEqual([3, 2]);
			expect(await seqs({ after: { at: T0 + 10_000, region: `${r}~`, seq: 1 } })).toEqual([5, 4, 3, 2, 1]);
			expect(await seqs({ after: { at: T0 + 10_000, region: r.slice(0, -1), seq: 1 } })).toEqual([3, 2, 1]);
		});

		it("keeps one signed checkpoint per region, and deletes a leading part of the chain in bounded batches", async () => {
			const r = region();
			await store.prepare(r, 86_400_000);
			const records = chainOf(r, [{}, {}, { at: T0 + 60_000 }, {}, {}]);
			await store.prepareAppend(r, records)();
			// Record 3 happened late, so retention may go up to 2 only while 4 and 5 happened before the cutoff.
			expect(await store.lastBefore(r, T0 + 30_000)).toBe(2);
			expect(await store.lastBefore(r, T0 + 100_000)).toBe(5);
			expect(await store.lastBefore(r, T0)).toBe(0);
			expect(await store.checkpoint(r)).toBeUndefined();
			const mark = signCheckpoint(KEYS, { region: r, seq: 4, hash: records[3]!.hash, at: T0 });
			await store.saveCheckpoint(mark);
			await store.saveCheckpoint({ ...mark, at: T0 + 1 });
			expect(await store.checkpoint(r)).toEqual({ ...mark, at: T0 + 1 });
			expect(await store.deleteUpTo(r, 4, 3)).toBe(3);
			expect(await store.deleteUpTo(r, 4, 3)).toBe(1);
			expect(await store.deleteUpTo(r, 4, 3)).toBe(0);
			expect((await store.scan(r, 0, 10)).map(x => x.seq)).toEqual([5]);
			await store.deleteUpTo(r, 5, 10);
			expect(await store.head(r)).toEqual({ seq: 4, hash: records[3]!.hash });
		});

		it("lets verification find a record changed in the database", async () => {
			const r = region();
			await store.prepare(r, 86_400_000);
			await store.prepareAppend(r, chainOf(r, [{}, {}, {}, {}]))();
			await opened.tamper(r, 3, { actor: "c".repeat(26) });
			expect(await verifyChain(store, r, KEYS, 2)).toEqual({
				region: r,
				ok: false,
				checked: 2,
				from: 0,
				to: 2,
				broken: { seq: 3, id: `${r}-3-2`, reason: "hash-mismatch" }
			});
		});
	});
}
