import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { RegionNode } from "../../app/node.ts";
import { sendHeldAuditRecord } from "../../mixins/audit.mixin.ts";
import type { EmbeddedRegions } from "../harness/embedded-regions.ts";
import { everyFeedHeard, startEmbeddedRegions } from "../harness/embedded-regions.ts";
import type { HttpAnswer } from "../harness/gateways.ts";
import { gatewaySchemas, gatewayUrl, http } from "../harness/gateways.ts";
import { within } from "../harness/waiting.ts";
import { expectError } from "./expect-error.ts";

/*
 * The audit log through the real api-cms gateway of cn-east: what logins, wallet changes and the
 * gateway's own writes leave in it, who may read it, the query across regions, the NDJSON export,
 * verification catching a record edited in a region's database, and a user's own activity.
 */

const nodes: Record<string, RegionNode> = {};
let cluster: EmbeddedRegions | undefined;
const cms = (method: string, path: string, opts?: Parameters<typeof http>[3]) => http(gatewayUrl(nodes["cn-east"]!.broker, "api-cms"), method, path, opts);
const PASSWORD = "audit trail works 1";
const token = { plain: "", support: "", ops: "", customer: "" };
const ids = { plain: "", support: "", ops: "", customer: "" };

async function register(username: string, country?: string): Promise<string> {
	const res = await cms("POST", "/api/v1/auth/register", { body: { username, password: PASSWORD, ...(country ? { country } : {}) } });
	expect(res.status, res.text).toBe(201);
	return res.body.id;
}

async function logIn(username: string): Promise<string> {
	const res = await cms("POST", "/api/v1/auth/login", { body: { login: username, password: PASSWORD } });
	expect(res.status, res.text).toBe(200);
	return res.body.accessToken;
}

const audit = (query: string, who: keyof typeof token = "support") => cms("GET", `/api/v1/admin/audit${query}`, { token: token[who] });

/** Waits until the query lists at least `count` records. */
async function listed(query: string, count: number): Promise<HttpAnswer> {
	let res: HttpAnswer | undefined;
	await within(async () => {
		res = await audit(query);
		return res.status === 200 && res.body.items.length >= count;
	}, 10_000);
	return res!;
}

beforeAll(async () => {
	vi.stubEnv("EDGEHOME_LOG_FLUSH_MS", "10");
	cluster = await startEmbeddedRegions({
		namespacePrefix: "audit-e2e-",
		services: ["sv-region", "sv-user", "auth-jwt", "auth-rbac", "sv-money", "sv-log"],
		schemas: gatewaySchemas()
	});
	Object.assign(nodes, cluster.nodes);
	await everyFeedHeard(cluster, 10_000);
	for (const role of ["plain", "support", "ops"] as const) {
		ids[role] = await register(`audit-${role}`);
		if (role !== "plain") await nodes["cn-east"]!.broker.call("auth-rbac.grant", { userId: ids[role], role });
		token[role] = await logIn(`audit-${role}`);
	}
	// Homed in eu-central: her records are kept there, the gateway's in cn-east.
	ids.customer = await register("audit-customer", "DE");
}, 60_000);

afterAll(async () => {
	await cluster?.stop();
	vi.unstubAllEnvs();
});

describe("the audit log through api-cms", () => {
	it("records logins that succeed and fail in the user's home region, with the client IP hashed and no password", async () => {
		expect((await cms("POST", "/api/v1/auth/login", { body: { login: "audit-customer", password: "not the password 1" } })).status).toBe(401);
		token.customer = await logIn("audit-customer");
		const res = await listed(`?actor=${ids.customer}&action=auth.login`, 2);
		expect(res.body.unavailable).toEqual([]);
		expect(res.body.items.map((r: { region: string; outcome: string }) => `${r.region} ${r.outcome}`)).toEqual(["eu-central success", "eu-central failure"]);
		const [success, failure] = res.body.items;
		expect(success.detail).toMatchObject({ client: "cms", sid: expect.any(String) });
		expect(failure.detail).toEqual({ client: "cms", reason: "wrong-password" });
		expect(success.ipHash).toMatch(/^[0-9a-f]{64}$/);
		expect(success.ipHash).toBe(failure.ipHash);
		expect(success.requestId).toEqual(expect.any(String));
		expect(res.text).not.toContain("not the password");
		expect(res.text).not.toContain("127.0.0.1");
	});

	it("records every api-cms write with its operator and outcome, and sv-money's adjustment in the wallet's home", async () => {
		const adjust = (amount: string) =>
			cms("POST", `/api/v1/admin/users/${ids.customer}/wallet/adjustments`, { token: token.ops, body: { amount, currency: "EUR", reason: "goodwill" } });
		expect((await adjust("500")).status).toBe(201);
		expect((await adjust("-99999")).status).toBe(422);
		const writes = await listed(`?action=cms.adjust-wallet&target=${ids.customer}`, 2);
		expect(
			writes.body.items.map((r: { region: string; actor: string; outcome: string; detail: Record<string, unknown> }) => [
				r.region,
				r.actor,
				r.outcome,
				r.detail
			])
		).toEqual([
			["cn-east", ids.ops, "refused", { amount: "-99999", currency: "EUR", reason: "goodwill", error: "INSUFFICIENT_FUNDS" }],
			["cn-east", ids.ops, "success", { amount: "500", currency: "EUR", reason: "goodwill" }]
		]);
		const ledger = await listed(`?region=eu-central&action=money.adjust&target=${ids.customer}`, 1);
		expect(ledger.body.items[0]).toMatchObject({ actor: ids.ops, outcome: "success", detail: { amount: "500", currency: "EUR", reason: "goodwill" } });
	});

	it("keeps a wallet write's record in the write's own outbox until it commits, then stores it once, with the request's id", async () => {
		const money = nodes["eu-central"]!.broker.getLocalService("sv-money") as unknown as { relay: { stop(): Promise<void>; start(): void } };
		const db = nodes["eu-central"]!.stores.sql.db;
		await money.relay.stop();
		let held: { payload: string }[];
		try {
			const res = await cms("POST", `/api/v1/admin/users/${ids.customer}/wallet/freeze`, { token: token.ops, body: { reason: "held record" } });
			expect(res.status, res.text).toBe(200);
			held = await db.selectFrom("money_outbox").select("payload").where("channel", "=", "audit.record").where("owner_id", "=", ids.customer).execute();
			expect(held.map(r => JSON.parse(r.payload).record)).toEqual([
				expect.objectContaining({ action: "money.freeze", actor: ids.ops, target: ids.customer, detail: { reason: "held record" } })
			]);
			// Not sent while the write's outbox holds it.
			await listed(`?action=cms.freeze-wallet&target=${ids.customer}`, 1);
			expect((await audit(`?region=eu-central&action=money.freeze&target=${ids.customer}`)).body.items).toEqual([]);
		} finally {
			money.relay.start();
		}
		const [cmsRecord] = (await listed(`?action=cms.freeze-wallet&target=${ids.customer}`, 1)).body.items;
		const [record] = (await listed(`?region=eu-central&action=money.freeze&target=${ids.customer}`, 1)).body.items;
		expect(record).toMatchObject({ actor: ids.ops, outcome: "success", requestId: cmsRecord.requestId });
		// A relay that dies between sending and deleting sends the row again: the log keeps one record.
		await sendHeldAuditRecord(nodes["eu-central"]!.broker, JSON.parse(held[0]!.payload));
		await new Promise(r => setTimeout(r, 200));
		expect((await audit(`?region=eu-central&action=money.freeze&target=${ids.customer}`)).body.items.map((r: { id: string }) => r.id)).toEqual([record.id]);
		expect((await cms("POST", `/api/v1/admin/users/${ids.customer}/wallet/unfreeze`, { token: token.ops })).status).toBe(200);
		// Its records are in before the next test pages through the log.
		await listed(`?region=eu-central&action=money.unfreeze&target=${ids.customer}`, 1);
		await listed(`?action=cms.unfreeze-wallet&target=${ids.customer}`, 1);
	});

	it("pages through every region merged by time, and exports the same records as NDJSON", async () => {
		const all = await listed("?limit=500", 6);
		const pages: string[] = [];
		for (let cursor: string | null = ""; cursor !== null; ) {
			const page: HttpAnswer = await audit(`?limit=3${cursor ? `&cursor=${cursor}` : ""}`);
			expect(page.status, page.text).toBe(200);
			pages.push(...page.body.items.map((r: { id: string }) => r.id));
			cursor = page.body.nextCursor;
		}
		expect(pages.slice(0, all.body.items.length)).toEqual(all.body.items.map((r: { id: string }) => r.id));
		const exported = await cms("GET", "/api/v1/admin/audit/export?limit=2", { token: token.support });
		expect(exported.status).toBe(200);
		expect(exported.headers.get("content-type")).toMatch(/^application\/x-ndjson/);
		expect(exported.headers.get("x-audit-unavailable")).toBe("");
		const lines = exported.text
			.trim()
			.split("\n")
			.map(l => JSON.parse(l) as { id: string });
		expect(lines.slice(-all.body.items.length).map(r => r.id)).toEqual(all.body.items.map((r: { id: string }) => r.id).slice(-lines.length));
		expect(lines.length).toBeGreaterThanOrEqual(all.body.items.length);
	});

	it("is for staff with audit:read only, and refuses bad input with a clear error", async () => {
		expectError(await audit("", "plain"), 403, "FORBIDDEN");
		expectError(await cms("GET", "/api/v1/admin/audit/verify", { token: token.plain }), 403, "FORBIDDEN");
		const bad = await audit("?from=yesterday");
		expectError(bad, 400, "VALIDATION_FAILED");
		expect(bad.body.error.details).toEqual([expect.objectContaining({ field: "from" })]);
		expectError(await audit("?from=2025-02-01&to=2025-01-01"), 422, "AUDIT_RANGE_INVALID");
		expectError(await audit("?region=mars-1"), 400, "VALIDATION_FAILED");
		expectError(await audit("?cursor=nope"), 400, "VALIDATION_FAILED");
	});

	it("verifies each region's chain, and finds the record someone edited in the database", async () => {
		const ok = await cms("GET", "/api/v1/admin/audit/verify?region=eu-central", { token: token.support });
		expect(ok.status, ok.text).toBe(200);
		expect(ok.body).toMatchObject({ region: "eu-central", ok: true, broken: null });
		const [adjusted] = (await listed(`?region=eu-central&action=money.adjust&limit=1`, 1)).body.items;
		await nodes["eu-central"]!.stores.sql.db.updateTable("audit_log").set({ detail: '{"amount":"5"}' }).where("seq", "=", adjusted.seq).execute();
		const broken = await cms("GET", "/api/v1/admin/audit/verify?region=eu-central", { token: token.support });
		expect(broken.body).toMatchObject({ ok: false, broken: { seq: adjusted.seq, id: adjusted.id, reason: "hash-mismatch" } });
		expect((await cms("GET", "/api/v1/admin/audit/verify", { token: token.support })).body).toMatchObject({ region: "cn-east", ok: true });
	});

	it("shows a user their own sign-ins and sign-outs, from their home region", async () => {
		expect((await cms("POST", "/api/v1/auth/logout", { token: token.customer })).status).toBe(204);
		const again = await logIn("audit-customer");
		let res: HttpAnswer | undefined;
		await within(async () => {
			res = await cms("GET", "/api/v1/me/activity", { token: again });
			return res.body.items?.length >= 4;
		}, 10_000);
		expect(res!.body.items.map((a: { action: string; outcome: string; region: string }) => `${a.action} ${a.outcome} ${a.region}`)).toEqual([
			"auth.login success eu-central",
			"auth.logout success eu-central",
			"auth.login success eu-central",
			"auth.login failure eu-central"
		]);
		expect(res!.body.items[0]).toMatchObject({ client: "cms", session: expect.any(String), ipHash: expect.stringMatching(/^[0-9a-f]{64}$/) });
		// Staff ending her session: listed as ended, and recorded as ops' act.
		const ended = await cms("DELETE", `/api/v1/admin/users/${ids.customer}/sessions/${res!.body.items[0].session}`, { token: token.ops });
		expect(ended.status, ended.text).toBe(204);
		const fresh = await logIn("audit-customer");
		await within(async () => (await cms("GET", "/api/v1/me/activity?limit=2", { token: fresh })).body.items?.[1]?.action === "auth.session-ended", 10_000);
		const byStaff = await listed(`?region=eu-central&action=auth.session-ended&target=${ids.customer}`, 1);
		expect(byStaff.body.items[0]).toMatchObject({ actor: ids.ops, detail: { sid: res!.body.items[0].session } });
		// Another user's activity is not theirs: support sees only their own.
		const theirs = await cms("GET", "/api/v1/me/activity", { token: token.support });
		expect(theirs.body.items.every((a: { action: string }) => a.action === "auth.login")).toBe(true);
		expect(theirs.body.items).toHaveLength(1);
	});
});
