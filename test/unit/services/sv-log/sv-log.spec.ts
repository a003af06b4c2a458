import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { RegionNode } from "../../../../app/node.ts";
import { logSubcommands } from "../../../../app/repl/log.command.ts";
import type { AuditMessage } from "../../../../mixins/audit.mixin.ts";
import { AUDIT_CHANNEL, audit, hashClientIp } from "../../../../mixins/audit.mixin.ts";
import { regionRuntimeOf } from "../../../../regions/runtime/region-runtime.ts";
import type { Verification } from "../../../../services/sv-log/chain.ts";
import { REDACTED } from "../../../../services/sv-log/redaction.ts";
import type { Retained } from "../../../../services/sv-log/retention.ts";
import type { Page } from "../../../../services/sv-log/sv-log.service.ts";
import type { EmbeddedRegions } from "../../../harness/embedded-regions.ts";
import { everyRegionLinked, startEmbeddedRegions } from "../../../harness/embedded-regions.ts";
import { failureOf, within } from "../../../harness/waiting.ts";

/** sv-log's rules through the broker: three regions in one process, each with its own SQLite store. */

const DAY = 86_400_000;
let cluster: EmbeddedRegions | undefined;
let nodes: Record<string, RegionNode>;
let runs = 0;
/** An action name of its own per test, so each test finds exactly its records. */
const uniqueAction = () => `test.run${++runs}`;

const call = <T>(region: string, action: string, params: unknown) => nodes[region]!.broker.call<T, unknown>(action, params);
const send = (region: string, record: Partial<AuditMessage> & { action: string }) =>
	nodes[region]!.broker.sendToChannel(AUDIT_CHANNEL, { at: Date.now(), actor: "system:test", outcome: "success", ...record });
const search = (region: string, params: Record<string, unknown>) => call<Page>(region, "sv-log.search", params);
const sqlOf = (region: string) => regionRuntimeOf(nodes[region]!.broker).stores.sql.db;

/** Waits until `region` lists `count` records of `action`. */
async function stored(region: string, action: string, count: number): Promise<Page> {
	let page: Page | undefined;
	await within(async () => (page = await search(region, { region, action, limit: 500 })).items.length >= count, 10_000);
	return page!;
}

beforeAll(async () => {
	// Services read their settings from the process's environment.
	for (const [name, value] of Object.entries({
		EDGEHOME_LOG_FLUSH_MS: "10",
		EDGEHOME_LOG_BATCH: "50",
		EDGEHOME_LOG_RETENTION_S: String(DAY / 1000),
		EDGEHOME_LOG_VERIFY_PAGE: "16"
	}))
		vi.stubEnv(name, value);
	cluster = await startEmbeddedRegions({ namespacePrefix: "svlog-", services: ["sv-log"] });
	nodes = cluster.nodes;
	await everyRegionLinked(cluster, 20_000);
}, 60_000);
afterAll(async () => {
	await cluster?.stop();
	vi.unstubAllEnvs();
});

describe("sv-log: retention", () => {
	// First in this file: cn-east's chain starts with this test's old records (retention deletes a leading part of a chain).
	it("deletes what is older than the region's period, leaves a signed checkpoint, and the chain still verifies, before and after new records", async () => {
		const action = uniqueAction();
		const old = Date.now() - 3 * DAY;
		for (let i = 0; i < 5; i++) await send("cn-east", { action, at: old + i, target: "old" });
		await stored("cn-east", action, 5);
		await send("cn-east", { action, target: "new" });
		await stored("cn-east", action, 6);
		// Everything before: the other tests' records are recent, so the chain's older part is this test's five.
		const before = await call<Verification>("cn-east", "sv-log.verify", { region: "cn-east" });
		const retained = await call<Retained>("cn-east", "sv-log.retain", { region: "cn-east" });
		const oldSeqs = (await search("cn-east", { region: "cn-east", action, limit: 10 })).items.filter(r => r.target === "old");
		expect(oldSeqs).toEqual([]);
		expect(retained.deleted).toBeGreaterThanOrEqual(5);
		expect(retained.checkpoint).toMatchObject({ region: "cn-east", seq: expect.any(Number), kid: "t1", signature: expect.stringMatching(/^[0-9a-f]{64}$/) });
		const after = await call<Verification>("cn-east", "sv-log.verify", { region: "cn-east" });
		expect(after).toMatchObject({ ok: true, from: retained.checkpoint!.seq, to: before.to });
		await send("cn-east", { action, target: "newer" });
		await stored("cn-east", action, 2);
		expect(await call<Verification>("cn-east", "sv-log.verify", { region: "cn-east" })).toMatchObject({ ok: true, from: retained.checkpoint!.seq });
		// A second run finds nothing more to do.
		expect(await call<Retained>("cn-east", "sv-log.retain", { region: "cn-east" })).toMatchObject({ deleted: 0, checkpoint: retained.checkpoint });
	});

	it("refuses a checkpoint not signed with the audit key, and a run that would delete records which do not verify", async () => {
		const db = sqlOf("cn-east");
		const mark = await db.selectFrom("audit_checkpoints").selectAll().where("region", "=", "cn-east").executeTakeFirstOrThrow();
		await db
			.updateTable("audit_checkpoints")
			.set({ seq: Number(mark.seq) + 1 })
			.where("region", "=", "cn-east")
			.execute();
		expect((await call<Verification>("cn-east", "sv-log.verify", { region: "cn-east" })).broken).toEqual({
			seq: Number(mark.seq) + 1,
			id: null,
			reason: "checkpoint-signature"
		});
		await db.updateTable("audit_checkpoints").set({ seq: mark.seq }).where("region", "=", "cn-east").execute();
		// An old record edited (ap-south's first): retention stops rather than delete the evidence.
		const action = uniqueAction();
		await send("ap-south", { action, at: Date.now() - 2 * DAY });
		const [edited] = (await stored("ap-south", action, 1)).items;
		await sqlOf("ap-south").updateTable("audit_log").set({ target: "edited" }).where("seq", "=", edited!.seq).execute();
		expect(await failureOf(call("ap-south", "sv-log.retain", { region: "ap-south" }))).toMatchObject({
			message: `retention of ap-south stopped: the chain breaks at ${edited!.seq} (hash-mismatch) before the records it would delete`
		});
		expect((await search("ap-south", { region: "ap-south", action })).items).toHaveLength(1);
		await sqlOf("ap-south").updateTable("audit_log").set({ target: null }).where("seq", "=", edited!.seq).execute();
	});
});

describe("sv-log: what a record holds", () => {
	it("keeps who, what, whom, the outcome, the request id and trace, and the client IP only as a keyed hash", async () => {
		const action = uniqueAction();
		const ctx = nodes["cn-east"]!.broker.ContextFactory.create(nodes["cn-east"]!.broker, null as never, {}, {
			requestID: "req-audit-1",
			meta: { traceparent: `00-${"ab".repeat(16)}-${"cd".repeat(8)}-01` }
		} as never);
		await audit(nodes["cn-east"]!.broker, ctx as never, {
			actor: "0".repeat(26),
			action,
			target: "1".repeat(26),
			outcome: "failure",
			detail: { client: "www", reason: "wrong password" },
			clientIp: "203.0.113.7"
		});
		const [record] = (await stored("cn-east", action, 1)).items;
		expect(record).toMatchObject({
			region: "cn-east",
			seq: expect.any(Number),
			actor: "0".repeat(26),
			action,
			target: "1".repeat(26),
			outcome: "failure",
			requestId: "req-audit-1",
			traceId: "ab".repeat(16),
			ipHash: hashClientIp("203.0.113.7"),
			detail: { client: "www", reason: "wrong password" },
			hash: expect.stringMatching(/^[0-9a-f]{64}$/)
		});
		expect(record!.ipHash).toMatch(/^[0-9a-f]{64}$/);
		expect(JSON.stringify(record)).not.toContain("203.0.113.7");
		expect(Date.parse(record!.at)).toBeGreaterThan(Date.now() - 60_000);
	});

	it("never keeps a password, token, secret, e-mail or phone number, whichever service sent it", async () => {
		const action = uniqueAction();
		await send("ap-south", {
			action,
			actor: "ann@example.com",
			target: "+65 9123 4567",
			detail: {
				password: "hunter2",
				refreshToken: `${"a".repeat(26)}.${"b".repeat(43)}`,
				note: "reset for ann@example.com, secret=s3cr3t, call +65 9123 4567",
				headers: { authorization: "Bearer abcdefghijk" },
				amount: "2500"
			}
		});
		const [record] = (await stored("ap-south", action, 1)).items;
		expect(record).toMatchObject({
			actor: REDACTED,
			target: REDACTED,
			detail: {
				password: REDACTED,
				refreshToken: REDACTED,
				note: `reset for ${REDACTED}, ${REDACTED} call ${REDACTED}`,
				headers: { authorization: REDACTED },
				amount: "2500"
			}
		});
		const text = JSON.stringify(await sqlOf("ap-south").selectFrom("audit_log").selectAll().execute());
		for (const secret of ["hunter2", "ann@example.com", "9123 4567", "s3cr3t", "abcdefghijk", "b".repeat(43)]) expect(text).not.toContain(secret);
	});

	it("refuses a record that is not one (unknown field, bad action, time far ahead) without storing it or stopping the ones after", async () => {
		const action = uniqueAction();
		await nodes["eu-central"]!.broker.sendToChannel(AUDIT_CHANNEL, { at: Date.now(), actor: "x", action, outcome: "success", extra: 1 });
		await send("eu-central", { action: "Not An Action" });
		await send("eu-central", { action, at: Date.now() + DAY });
		await send("eu-central", { action, actor: "kept" });
		const page = await stored("eu-central", action, 1);
		await new Promise(r => setTimeout(r, 100));
		expect((await search("eu-central", { region: "eu-central", action })).items.map(r => r.actor)).toEqual(["kept"]);
		expect(page.items).toHaveLength(1);
	});

	it("caps a record's detail at EDGEHOME_LOG_MAX_DETAIL_BYTES, saying it did", async () => {
		const action = uniqueAction();
		await send("cn-east", { action, detail: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, "v".repeat(400)])) });
		const [record] = (await stored("cn-east", action, 1)).items;
		expect(record!.detail).toEqual({ truncated: true, bytes: expect.any(Number) });
	});
});

describe("sv-log: the hash chain", () => {
	it("links every record of a region to the one before, and verify walks it", async () => {
		const action = uniqueAction();
		await Promise.all(Array.from({ length: 120 }, (_, i) => send("ap-south", { action, target: `t${i}` })));
		await stored("ap-south", action, 120);
		const all = (await search("ap-south", { region: "ap-south", limit: 500 })).items;
		const v = await call<Verification>("cn-east", "sv-log.verify", { region: "ap-south" });
		expect(v).toEqual({ region: "ap-south", ok: true, checked: all.length, from: 0, to: Math.max(...all.map(r => r.seq)), broken: null });
	});

	it("reports the first record edited in the database, and only from there", async () => {
		const action = uniqueAction();
		await Promise.all(Array.from({ length: 10 }, (_, i) => send("eu-central", { action, target: `t${i}` })));
		const page = await stored("eu-central", action, 10);
		const victim = page.items[4]!;
		const later = page.items[1]!;
		await sqlOf("eu-central").updateTable("audit_log").set({ outcome: "failure" }).where("seq", "=", victim.seq).execute();
		await sqlOf("eu-central").updateTable("audit_log").set({ actor: "mallory" }).where("seq", "=", later.seq).execute();
		const v = await call<Verification>("eu-central", "sv-log.verify", { region: "eu-central" });
		expect(v).toMatchObject({ ok: false, to: victim.seq - 1, broken: { seq: victim.seq, id: victim.id, reason: "hash-mismatch" } });
		// Deleting a record is a gap where it stood.
		await sqlOf("eu-central")
			.deleteFrom("audit_log")
			.where("seq", ">=", victim.seq)
			.where("seq", "<=", victim.seq + 1)
			.execute();
		expect((await call<Verification>("eu-central", "sv-log.verify", { region: "eu-central" })).broken).toEqual({ seq: victim.seq, id: null, reason: "gap" });
	});
});

describe("sv-log: the console", () => {
	it("answers `log verify` for every region, or one, naming a broken link", async () => {
		const broker = nodes["cn-east"]!.broker;
		const lines: string[] = [];
		const { verify } = logSubcommands({ regions: regionRuntimeOf(broker).regions, print: line => lines.push(line) });
		await verify!.run(broker, []);
		expect(lines.sort()).toEqual([
			expect.stringMatching(/^ap-south: ok, \d+ records checked \(seq 1\.\.\d+\)$/),
			expect.stringMatching(/^cn-east: ok, \d+ records checked \(seq \d+\.\.\d+, after the checkpoint at \d+\)$/),
			// Records deleted by the chain's test above.
			expect.stringMatching(/^eu-central: BROKEN at seq \d+: gap; \d+ records checked \(seq 1\.\.\d+\) before it$/)
		]);
		lines.length = 0;
		await verify!.run(broker, ["ap-south"]);
		expect(lines).toEqual([expect.stringMatching(/^ap-south: ok/)]);
		await expect(verify!.run(broker, ["mars-1"])).rejects.toMatchObject({ type: "UNKNOWN_REGION" });
	});
});

describe("sv-log: queries", () => {
	it("filters by actor, target, action, request id and time, and pages with a cursor through every region merged by time", async () => {
		const action = uniqueAction();
		const base = Date.now() - 60_000;
		const regions = ["cn-east", "ap-south", "eu-central"];
		for (let i = 0; i < 12; i++)
			await send(regions[i % 3]!, { action, at: base + Math.floor(i / 2) * 1000, actor: i % 4 === 0 ? "ann" : "bob", target: `t${i}` });
		for (const r of regions) await stored(r, action, 4);
		const every = await search("cn-east", { action, limit: 500 });
		expect(every.unavailable).toEqual([]);
		expect(every.items).toHaveLength(12);
		const times = every.items.map(r => Date.parse(r.at));
		expect(times).toEqual([...times].sort((a, b) => b - a));
		expect((await search("ap-south", { action, actor: "ann" })).items.map(r => r.target).sort()).toEqual(["t0", "t4", "t8"]);
		expect((await search("ap-south", { action, target: "t5" })).items.map(r => r.region)).toEqual(["eu-central"]);
		const from = new Date(base + 2000).toISOString();
		const to = new Date(base + 4000).toISOString();
		expect((await search("eu-central", { action, from, to })).items.map(r => r.target).sort()).toEqual(["t4", "t5", "t6", "t7"]);
		expect((await search("eu-central", { action, region: "ap-south" })).items.map(r => r.region)).toEqual(["ap-south", "ap-south", "ap-south", "ap-south"]);
		// Pages of 5: each record once, in the same order as the whole list.
		const paged: string[] = [];
		let cursor: string | null | undefined;
		do {
			const page: Page = await search("cn-east", { action, limit: 5, ...(cursor ? { cursor } : {}) });
			paged.push(...page.items.map(r => r.id));
			cursor = page.nextCursor;
		} while (cursor);
		expect(paged).toEqual(every.items.map(r => r.id));
	});

	it("finds the records of one request by its id", async () => {
		const action = uniqueAction();
		const broker = nodes["ap-south"]!.broker;
		const ctx = broker.ContextFactory.create(broker, null as never, {}, { requestID: "req-find-me" } as never);
		await audit(broker, ctx as never, { actor: "system:test", action, outcome: "success" });
		await send("ap-south", { action });
		await stored("ap-south", action, 2);
		expect((await search("cn-east", { requestId: "req-find-me" })).items.map(r => r.action)).toEqual([action]);
	});

	it("refuses bad input with the field named, and a range that selects nothing", async () => {
		const refusal = (params: Record<string, unknown>) => failureOf(search("cn-east", { ...params }));
		expect(await refusal({ from: "yesterday" })).toMatchObject({ type: "VALIDATION_ERROR", data: [expect.objectContaining({ field: "from" })] });
		expect(await refusal({ from: "2025-02-30" })).toMatchObject({ type: "VALIDATION_ERROR", data: [expect.objectContaining({ field: "from" })] });
		expect(await refusal({ cursor: "abc" })).toMatchObject({ type: "VALIDATION_ERROR", data: [expect.objectContaining({ field: "cursor" })] });
		expect(await refusal({ limit: 501 })).toMatchObject({ type: "VALIDATION_ERROR", data: [expect.objectContaining({ field: "limit" })] });
		expect(await refusal({ color: "red" })).toMatchObject({ type: "VALIDATION_ERROR" });
		expect(await refusal({ region: "mars-1" })).toMatchObject({ type: "UNKNOWN_REGION", code: 422 });
		expect(await refusal({ from: "2025-02-01", to: "2025-01-01" })).toMatchObject({ type: "AUDIT_RANGE_INVALID", code: 422 });
	});

	it("lists a region that is down as unavailable, and still answers with the others", async () => {
		const action = uniqueAction();
		for (const r of ["cn-east", "eu-central"]) await send(r, { action });
		await stored("cn-east", action, 1);
		await stored("eu-central", action, 1);
		await nodes["ap-south"]!.stop();
		const page = await search("cn-east", { action });
		expect(page.unavailable).toEqual(["ap-south"]);
		expect(page.items.map(r => r.region).sort()).toEqual(["cn-east", "eu-central"]);
	});
});
