import type { Logger } from "moleculer";
import { afterEach, describe, expect, it } from "vitest";
import { migrate } from "../../../../regions/stores/index.ts";
import type { SqlStore } from "../../../../regions/stores/sql.ts";
import { openSqlStore } from "../../../../regions/stores/sql.ts";
import { verifyChain } from "../../../../services/sv-log/chain.ts";
import type { Entry } from "../../../../services/sv-log/ingester.ts";
import { Ingester } from "../../../../services/sv-log/ingester.ts";
import { migrations } from "../../../../services/sv-log/migrations.ts";
import { SqlLogStore } from "../../../../services/sv-log/sql-store.ts";
import type { LogStore } from "../../../../services/sv-log/store.ts";

const logger = { warn: () => undefined } as unknown as Logger;
const KEYS = [{ kid: "t1", key: Buffer.alloc(32, 9) }];
let sql: SqlStore | undefined;
afterEach(async () => {
	await sql?.close();
	sql = undefined;
});

async function openStore(): Promise<LogStore> {
	sql = await openSqlStore("sqlite::memory:");
	await migrate(sql.db, "sv-log", migrations);
	return new SqlLogStore(sql.db);
}

/** Counts the appends a store runs. */
function counting(store: LogStore): { store: LogStore; appends: number[] } {
	const appends: number[] = [];
	return {
		appends,
		store: Object.assign(Object.create(store), {
			prepareAppend: (region: string, records: Parameters<LogStore["prepareAppend"]>[1]) => {
				const write = store.prepareAppend(region, records);
				return () => {
					appends.push(records.length);
					return write();
				};
			}
		})
	};
}

const entry = (id: string): Entry => ({
	id,
	at: Date.now(),
	actor: "system:test",
	action: "test.run",
	target: null,
	outcome: "success",
	requestId: null,
	traceId: null,
	ipHash: null,
	detail: null
});

describe("audit ingestion", () => {
	it("writes full batches at once and a partial one after the flush interval, each record linked in order", async () => {
		const { store, appends } = counting(await openStore());
		const ingester = new Ingester(store, "cn-east", { batchSize: 10, flushMs: 30, maxConflicts: 5 }, logger);
		const started = Date.now();
		await Promise.all(Array.from({ length: 25 }, (_, i) => ingester.add(entry(`m${i}`))));
		expect(appends).toEqual([10, 10, 5]);
		expect(Date.now() - started).toBeGreaterThanOrEqual(25);
		expect((await store.scan("cn-east", 0, 100)).map(r => r.id)).toEqual(Array.from({ length: 25 }, (_, i) => `m${i}`));
		expect(await verifyChain(store, "cn-east", KEYS, 7)).toMatchObject({ ok: true, checked: 25 });
	});

	it("sends the next batch to the store before acknowledging the one stored, so new records are linked while it is written", async () => {
		const real = await openStore();
		const events: string[] = [];
		const store = Object.assign(Object.create(real), {
			prepareAppend: (region: string, records: Parameters<LogStore["prepareAppend"]>[1]) => {
				const write = real.prepareAppend(region, records);
				return () => {
					events.push(`write ${records.map(r => r.id).join(",")}`);
					return write();
				};
			}
		}) as LogStore;
		const ingester = new Ingester(store, "cn-east", { batchSize: 2, flushMs: 5, maxConflicts: 5 }, logger);
		await Promise.all(["a", "b", "c", "d"].map(id => ingester.add(entry(id)).then(() => events.push(`ack ${id}`))));
		expect(events).toEqual(["write a,b", "write c,d", "ack a", "ack b", "ack c", "ack d"]);
	});

	it("stores a message delivered twice once, and keeps one chain while two nodes append to it", async () => {
		const store = await openStore();
		const a = new Ingester(store, "cn-east", { batchSize: 5, flushMs: 5, maxConflicts: 50 }, logger);
		const b = new Ingester(store, "cn-east", { batchSize: 5, flushMs: 5, maxConflicts: 50 }, logger);
		const sent: Promise<void>[] = [];
		for (let i = 0; i < 60; i++) sent.push((i % 2 ? a : b).add(entry(`m${i}`)));
		// Redeliveries: the same ids again, on either node, while the first are still being stored.
		for (let i = 0; i < 10; i++) sent.push((i % 2 ? b : a).add(entry(`m${i}`)));
		await Promise.all(sent);
		const stored = await store.scan("cn-east", 0, 1000);
		expect(stored).toHaveLength(60);
		expect(new Set(stored.map(r => r.id)).size).toBe(60);
		expect(await verifyChain(store, "cn-east", KEYS, 1000)).toMatchObject({ ok: true, checked: 60 });
	});

	it("fails a batch back when the store fails, so its channel messages come again, and goes on afterwards", async () => {
		const real = await openStore();
		let down = true;
		const store = Object.assign(Object.create(real), {
			prepareAppend: (region: string, records: Parameters<LogStore["prepareAppend"]>[1]) => () =>
				down ? Promise.reject(new Error("store down")) : real.prepareAppend(region, records)()
		}) as LogStore;
		const ingester = new Ingester(store, "cn-east", { batchSize: 2, flushMs: 5, maxConflicts: 5 }, logger);
		await expect(ingester.add(entry("x1"))).rejects.toThrow("store down");
		down = false;
		await ingester.add(entry("x1"));
		expect((await real.scan("cn-east", 0, 10)).map(r => r.id)).toEqual(["x1"]);
	});

	it("links a batch again when the one it was linked on failed, so the chain never holds a link to nothing", async () => {
		const real = await openStore();
		let failures = 1;
		const store = Object.assign(Object.create(real), {
			prepareAppend: (region: string, records: Parameters<LogStore["prepareAppend"]>[1]) => () =>
				failures-- > 0 ? Promise.reject(new Error("store down")) : real.prepareAppend(region, records)()
		}) as LogStore;
		const ingester = new Ingester(store, "cn-east", { batchSize: 2, flushMs: 5, maxConflicts: 5 }, logger);
		// Four at once: the second batch is linked on the first while the first is being appended.
		const outcomes = await Promise.allSettled(["a", "b", "c", "d"].map(id => ingester.add(entry(id))));
		expect(outcomes.map(o => o.status)).toEqual(["rejected", "rejected", "fulfilled", "fulfilled"]);
		expect((await real.scan("cn-east", 0, 10)).map(r => [r.seq, r.id])).toEqual([
			[1, "c"],
			[2, "d"]
		]);
		expect(await verifyChain(real, "cn-east", KEYS, 10)).toMatchObject({ ok: true, checked: 2 });
	});
});
