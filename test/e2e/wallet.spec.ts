import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../app/node.ts";
import type { EmbeddedRegions } from "../harness/embedded-regions.ts";
import { everyFeedHeard, REGION_IDS, startEmbeddedRegions } from "../harness/embedded-regions.ts";
import type { GatewayName, HttpAnswer } from "../harness/gateways.ts";
import { GATEWAYS, gatewaySchemas, gatewayUrl, http } from "../harness/gateways.ts";
import { within } from "../harness/waiting.ts";
import { expectError } from "./expect-error.ts";

/*
 * The caller's wallet over HTTP, through real gateways in front of the three embedded regions:
 * what a user sees of transfers, holds, balances and entries, and of every refusal, which must
 * change no balance and disclose nothing internal.
 */

const nodes: Record<string, RegionNode> = {};
let cluster: EmbeddedRegions | undefined;
const PASSWORD = "wallet test 2026";
/** Generous per-IP and per-user limits: every request of this file comes from one IP. */
const LIMITS = { rateLimits: { ip: { max: 10_000, windowMs: 60_000 }, user: { max: 10_000, windowMs: 60_000 } } };

const via =
	(gateway: GatewayName, region = "cn-east") =>
	(method: string, path: string, opts?: Parameters<typeof http>[3]) =>
		http(gatewayUrl(nodes[region]!.broker, gateway), method, path, opts);
const www = via("api-www");

interface User {
	id: string;
	username: string;
	token: string;
}

async function user(username: string, country?: string): Promise<User> {
	const registered = await www("POST", "/api/v1/auth/register", { body: { username, password: PASSWORD, ...(country ? { country } : {}) } });
	expect(registered.status, registered.text).toBe(201);
	const tokens = await www("POST", "/api/v1/auth/login", { body: { login: username, password: PASSWORD } });
	expect(tokens.status, tokens.text).toBe(200);
	return { id: registered.body.id, username, token: tokens.body.accessToken };
}

/** A request of `who`'s, with an Idempotency-Key when given one. */
function as(who: User, method: string, path: string, body?: unknown, key?: string): Promise<HttpAnswer> {
	return www(method, path, { token: who.token, body, headers: key === undefined ? {} : { "Idempotency-Key": key } });
}

const send = (who: User, body: unknown, key: string = randomUUID()) => as(who, "POST", "/api/v1/wallet/transfers", body, key);

async function balances(who: User): Promise<Record<string, { balance: string; available: string; pending: string }>> {
	const res = await as(who, "GET", "/api/v1/wallet");
	expect(res.status, res.text).toBe(200);
	return Object.fromEntries(res.body.balances.map((b: { currency: string }) => [b.currency, { ...b, currency: undefined }]));
}

async function usd(who: User): Promise<{ balance: string; available: string; pending: string } | undefined> {
	const b = (await balances(who)).USD;
	return b && { balance: b.balance, available: b.available, pending: b.pending };
}

/** Every entry of `who`'s, newest first, read a page of `limit` at a time. */
async function allEntries(
	who: User,
	limit: number,
	currency?: string
): Promise<{ pages: number; items: { id: string; amount: string; transferId: string }[] }> {
	const items: { id: string; amount: string; transferId: string }[] = [];
	let cursor: string | null = null;
	let pages = 0;
	do {
		const query = new URLSearchParams({ limit: String(limit), ...(currency ? { currency } : {}), ...(cursor ? { cursor } : {}) });
		const res = await as(who, "GET", `/api/v1/wallet/entries?${query}`);
		expect(res.status, res.text).toBe(200);
		expect(res.body.items.length).toBeLessThanOrEqual(limit);
		items.push(...res.body.items);
		cursor = res.body.nextCursor;
		pages++;
	} while (cursor !== null);
	return { pages, items };
}

/** A hold's lifetime in whole seconds (sv-money stamps its expiry and its creation a moment apart). */
const lifetimeS = (hold: { createdAt: string; expiresAt: string }) => Math.round((Date.parse(hold.expiresAt) - Date.parse(hold.createdAt)) / 1000);

let admin: User;
let ann: User;
let bob: User;
let carol: User;

/** Money an operator gives a user, through sv-money itself (the staff route is api-cms's, tested with it). */
function seed(who: User, amount: string, currency = "USD") {
	return nodes["cn-east"]!.broker.call("sv-money.adjust", { userId: who.id, amount, currency, reason: "wallet e2e seed", operator: admin.id });
}

beforeAll(async () => {
	cluster = await startEmbeddedRegions({
		namespacePrefix: "wallet-e2e-",
		services: ["sv-region", "sv-user", "auth-jwt", "auth-rbac", "sv-money"],
		schemas: gatewaySchemas(Object.fromEntries(Object.keys(GATEWAYS).map(name => [name, LIMITS])))
	});
	Object.assign(nodes, cluster.nodes);
	await everyFeedHeard(cluster, 10_000);
	admin = await user("wallet-admin");
	await nodes["cn-east"]!.broker.call("auth-rbac.grant", { userId: admin.id, role: "admin" });
	[ann, bob, carol] = await Promise.all([user("ann"), user("bob"), user("carol")]);
	await seed(ann, "10000");
}, 60_000);

afterAll(() => cluster?.stop());

describe("wallet: balances and transfers", () => {
	let first: Record<string, unknown>;

	it("shows a seeded wallet: balance, available and pending per currency", async () => {
		const res = await as(ann, "GET", "/api/v1/wallet");
		expect(res.status).toBe(200);
		expect(res.body).toEqual({ userId: ann.id, frozen: false, balances: [{ currency: "USD", balance: "10000", available: "10000", pending: "0" }] });
		expect(await as(bob, "GET", "/api/v1/wallet")).toMatchObject({ status: 200, body: { userId: bob.id, frozen: false, balances: [] } });
	});

	it("sends money to a username: 201 with its Location, then 200 with the same body for a replay", async () => {
		const body = { to: "bob", amount: "2500", currency: "USD", memo: "lunch" };
		const sent = await send(ann, body, "ann-lunch-1");
		expect(sent.status, sent.text).toBe(201);
		first = sent.body;
		expect(first).toEqual({
			id: expect.stringMatching(/^[0-9a-f-]{36}$/),
			status: "completed",
			from: ann.id,
			to: bob.id,
			amount: "2500",
			currency: "USD",
			memo: "lunch",
			reason: null,
			createdAt: expect.any(String),
			completedAt: expect.any(String)
		});
		expect(sent.headers.get("location")).toBe(`/api/v1/wallet/transfers/${first.id}`);

		const replayed = await send(ann, body, "ann-lunch-1");
		expect(replayed.status).toBe(200);
		expect(replayed.body).toEqual(first);
		expect(await usd(ann)).toEqual({ balance: "7500", available: "7500", pending: "0" });
		expect(await usd(bob)).toEqual({ balance: "2500", available: "2500", pending: "0" });
	});

	it("refuses the same key with a different request: 422 IDEMPOTENCY_KEY_REUSED, nothing moved", async () => {
		expectError(await send(ann, { to: "bob", amount: "2600", currency: "USD", memo: "lunch" }, "ann-lunch-1"), 422, "IDEMPOTENCY_KEY_REUSED");
		expectError(await send(ann, { to: "carol", amount: "2500", currency: "USD", memo: "lunch" }, "ann-lunch-1"), 422, "IDEMPOTENCY_KEY_REUSED");
		expect(await usd(ann)).toEqual({ balance: "7500", available: "7500", pending: "0" });
	});

	it("sends to a user id as well, and each user's keys are their own", async () => {
		const sent = await send(bob, { to: ann.id, amount: "500", currency: "USD" }, "ann-lunch-1");
		expect(sent.status, sent.text).toBe(201);
		expect(sent.body).toMatchObject({ from: bob.id, to: ann.id, amount: "500", memo: null, status: "completed" });
		expect(await usd(ann)).toEqual({ balance: "8000", available: "8000", pending: "0" });
		expect(await usd(bob)).toEqual({ balance: "2000", available: "2000", pending: "0" });
	});

	it("refuses every bad request with its own code and changes no balance and no entry", async () => {
		const before = { ann: await usd(ann), bob: await usd(bob), annEntries: (await allEntries(ann, 100)).items, bobEntries: (await allEntries(bob, 100)).items };
		const good = { to: "bob", amount: "100", currency: "USD" };
		const transfers = "/api/v1/wallet/transfers";

		expectError(await as(ann, "POST", transfers, good), 400, "IDEMPOTENCY_KEY_MISSING");
		for (const key of ["two words", "x".repeat(256), "caf\u00e9"]) expectError(await send(ann, good, key), 400, "IDEMPOTENCY_KEY_INVALID");
		expectError(await send(ann, { ...good, to: "nobody-here" }), 404, "RECIPIENT_NOT_FOUND");
		expectError(await send(ann, { ...good, to: "0".repeat(26) }), 404, "RECIPIENT_NOT_FOUND");
		expectError(await send(ann, { ...good, amount: "8001" }), 422, "INSUFFICIENT_FUNDS");
		for (const amount of ["0", "-1", "1.5", 1.5, 100, "", "1e3", "12345678901234567890"])
			expectError(await send(ann, { ...good, amount }), 422, "AMOUNT_INVALID");
		expectError(await send(ann, { ...good, to: "ann" }), 422, "TRANSFER_TO_SELF");
		expectError(await send(ann, { ...good, to: ann.id }), 422, "TRANSFER_TO_SELF");
		for (const currency of ["usd", "XAU", "ZZZ"]) expectError(await send(ann, { ...good, currency }), 422, "CURRENCY_NOT_SUPPORTED");
		expectError(await send(ann, { ...good, extra: true }), 400, "VALIDATION_FAILED");
		expectError(await send(ann, { to: "bob", currency: "USD" }), 400, "VALIDATION_FAILED");
		expectError(await send(ann, { ...good, memo: "m".repeat(141) }), 400, "VALIDATION_FAILED");
		expectError(await www("POST", transfers, { body: good, headers: { "Idempotency-Key": randomUUID() } }), 401, "UNAUTHORIZED");

		expect(await usd(ann)).toEqual(before.ann);
		expect(await usd(bob)).toEqual(before.bob);
		expect((await allEntries(ann, 100)).items).toEqual(before.annEntries);
		expect((await allEntries(bob, 100)).items).toEqual(before.bobEntries);
	});

	it("reads a transfer back for its parties only: another user's is not found", async () => {
		const path = `/api/v1/wallet/transfers/${first.id}`;
		expect(await as(ann, "GET", path)).toMatchObject({ status: 200, body: first });
		expect(await as(bob, "GET", path)).toMatchObject({ status: 200, body: { id: first.id, from: ann.id, to: bob.id, amount: "2500" } });
		expectError(await as(carol, "GET", path), 404, "TRANSFER_NOT_FOUND");
		expectError(await as(ann, "GET", `/api/v1/wallet/transfers/${randomUUID()}`), 404, "TRANSFER_NOT_FOUND");
		expectError(await as(ann, "GET", "/api/v1/wallet/transfers/not-an-id"), 400, "VALIDATION_FAILED");
	});
});

describe("wallet: entries", () => {
	it("pages the entries newest first with a cursor, every entry once", async () => {
		for (const amount of ["1", "2", "3", "4", "5"]) expect((await send(ann, { to: "carol", amount, currency: "USD" })).status).toBe(201);
		const whole = await allEntries(ann, 100);
		const paged = await allEntries(ann, 2);
		expect(paged.items).toEqual(whole.items);
		expect(paged.pages).toBe(Math.ceil(whole.items.length / 2));
		// The seed, two transfers with bob, five to carol.
		expect(whole.items.map(e => e.amount)).toEqual(["-5", "-4", "-3", "-2", "-1", "500", "-2500", "10000"]);
		expect(new Set(whole.items.map(e => e.id)).size).toBe(whole.items.length);
		expect(whole.items[0]).toEqual({
			id: expect.any(String),
			transferId: expect.any(String),
			currency: "USD",
			amount: "-5",
			kind: expect.any(String),
			counterparty: carol.id,
			memo: null,
			createdAt: expect.any(String)
		});
		expect((await allEntries(ann, 3, "EUR")).items).toEqual([]);
		expect((await as(ann, "GET", "/api/v1/wallet/entries")).body.items).toHaveLength(8);
	});

	it("refuses a limit over 100 and a cursor it did not give", async () => {
		expectError(await as(ann, "GET", "/api/v1/wallet/entries?limit=101"), 400, "VALIDATION_FAILED");
		expectError(await as(ann, "GET", "/api/v1/wallet/entries?limit=0"), 400, "VALIDATION_FAILED");
		expectError(await as(ann, "GET", "/api/v1/wallet/entries?cursor=bm90LWEtY3Vyc29y"), 400, "VALIDATION_FAILED");
	});
});

describe("wallet: holds", () => {
	const holds = "/api/v1/wallet/holds";

	it("places a hold (201, 200 on replay), keeps it from what is available, and captures it to the recipient", async () => {
		const annBefore = (await usd(ann))!;
		const bobBefore = (await usd(bob))!;
		const body = { to: "bob", amount: "1000", currency: "USD", expiresInSeconds: 600, memo: "deposit" };
		const placed = await as(ann, "POST", holds, body, "ann-hold-1");
		expect(placed.status, placed.text).toBe(201);
		expect(placed.body).toEqual({
			id: expect.stringMatching(/^[0-9a-f-]{36}$/),
			status: "pending",
			from: ann.id,
			to: bob.id,
			amount: "1000",
			currency: "USD",
			memo: "deposit",
			createdAt: expect.any(String),
			expiresAt: expect.any(String),
			transferId: null
		});
		expect(lifetimeS(placed.body)).toBe(600);
		expect(placed.headers.get("location")).toBe(`${holds}/${placed.body.id}`);
		expect(await as(ann, "POST", holds, body, "ann-hold-1")).toMatchObject({ status: 200, body: placed.body });
		expectError(await as(ann, "POST", holds, { ...body, amount: "1001" }, "ann-hold-1"), 422, "IDEMPOTENCY_KEY_REUSED");

		const held = String(Number(annBefore.available) - 1000);
		expect(await usd(ann)).toEqual({ balance: annBefore.balance, available: held, pending: "1000" });
		expectError(await send(ann, { to: "carol", amount: String(Number(held) + 1), currency: "USD" }), 422, "INSUFFICIENT_FUNDS");
		expect(await as(ann, "GET", `${holds}/${placed.body.id}`)).toMatchObject({ status: 200, body: placed.body });
		expectError(await as(bob, "GET", `${holds}/${placed.body.id}`), 404, "HOLD_NOT_FOUND");
		expectError(await as(bob, "POST", `${holds}/${placed.body.id}/capture`), 404, "HOLD_NOT_FOUND");

		const captured = await as(ann, "POST", `${holds}/${placed.body.id}/capture`);
		expect(captured.status, captured.text).toBe(200);
		expect(captured.body).toEqual({ ...placed.body, status: "captured", transferId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
		expect(await usd(ann)).toEqual({ balance: held, available: held, pending: "0" });
		expect(await usd(bob)).toEqual({ ...bobBefore, balance: String(Number(bobBefore.balance) + 1000), available: String(Number(bobBefore.available) + 1000) });
		const transfer = await as(ann, "GET", `/api/v1/wallet/transfers/${captured.body.transferId}`);
		expect(transfer).toMatchObject({ status: 200, body: { from: ann.id, to: bob.id, amount: "1000", status: "completed" } });

		expectError(await as(ann, "POST", `${holds}/${placed.body.id}/capture`), 409, "HOLD_NOT_PENDING");
		expectError(await as(ann, "POST", `${holds}/${placed.body.id}/void`), 409, "HOLD_NOT_PENDING");
	});

	it("voids a hold, giving back what it kept", async () => {
		const before = await usd(ann);
		const placed = await as(ann, "POST", holds, { to: carol.id, amount: "700", currency: "USD" }, randomUUID());
		expect(placed.status, placed.text).toBe(201);
		expect(lifetimeS(placed.body)).toBe(3600);
		expect((await usd(ann))!.pending).toBe("700");
		const voided = await as(ann, "POST", `${holds}/${placed.body.id}/void`);
		expect(voided).toMatchObject({ status: 200, body: { ...placed.body, status: "voided", transferId: null } });
		expect(await usd(ann)).toEqual(before);
		expect(await usd(carol)).toEqual({ balance: "15", available: "15", pending: "0" });
	});

	it("refuses bad holds with their codes and keeps nothing", async () => {
		const before = await usd(ann);
		const good = { to: "bob", amount: "100", currency: "USD" };
		expectError(await as(ann, "POST", holds, good), 400, "IDEMPOTENCY_KEY_MISSING");
		expectError(await as(ann, "POST", holds, good, ""), 400, "IDEMPOTENCY_KEY_INVALID");
		expectError(await as(ann, "POST", holds, { ...good, amount: "100000" }, randomUUID()), 422, "INSUFFICIENT_FUNDS");
		expectError(await as(ann, "POST", holds, { ...good, amount: 1.5 }, randomUUID()), 422, "AMOUNT_INVALID");
		expectError(await as(ann, "POST", holds, { ...good, to: "nobody-here" }, randomUUID()), 404, "RECIPIENT_NOT_FOUND");
		expectError(await as(ann, "POST", holds, { ...good, expiresInSeconds: 604_801 }, randomUUID()), 400, "VALIDATION_FAILED");
		expectError(await as(ann, "POST", `${holds}/${randomUUID()}/capture`), 404, "HOLD_NOT_FOUND");
		expectError(await as(ann, "POST", `${holds}/${randomUUID()}/void`), 404, "HOLD_NOT_FOUND");
		expect(await usd(ann)).toEqual(before);
	});
});

describe("wallet: across regions and gateways", () => {
	it("sends to a user of another region: pending, then completed there", async () => {
		const dora = await user("dora", "DE");
		const sent = await send(ann, { to: "dora", amount: "50", currency: "USD" });
		expect(sent.status, sent.text).toBe(201);
		expect(["pending", "completed"]).toContain(sent.body.status);
		await within(async () => (await as(ann, "GET", `/api/v1/wallet/transfers/${sent.body.id}`)).body.status === "completed", 15_000);
		expect(await usd(dora)).toEqual({ balance: "50", available: "50", pending: "0" });
	});

	it("serves the caller's wallet on every gateway, to that gateway's tokens", async () => {
		for (const gateway of Object.keys(GATEWAYS) as GatewayName[]) {
			const c = via(gateway, "eu-central");
			const token = (await c("POST", "/api/v1/auth/login", { body: { login: "bob", password: PASSWORD } })).body.accessToken;
			const res = await c("GET", "/api/v1/wallet", { token });
			expect({ gateway, status: res.status, userId: res.body.userId }).toEqual({ gateway, status: 200, userId: bob.id });
			const doc = (await c("GET", "/api/v1/openapi.json")).body;
			expect(doc.paths["/api/v1/wallet/transfers"].post.parameters).toContainEqual(
				expect.objectContaining({ name: "Idempotency-Key", in: "header", required: true })
			);
		}
	});

	it("answers 423 WALLET_FROZEN for a frozen wallet, paying or paid, and moves nothing", async () => {
		const cn = nodes["cn-east"]!.broker;
		await cn.call("sv-money.freeze", { userId: carol.id, reason: "wallet e2e" });
		const before = { ann: await usd(ann), carol: await usd(carol) };
		expect((await as(carol, "GET", "/api/v1/wallet")).body.frozen).toBe(true);
		expectError(await send(carol, { to: "ann", amount: "1", currency: "USD" }), 423, "WALLET_FROZEN");
		expectError(await send(ann, { to: "carol", amount: "1", currency: "USD" }), 423, "WALLET_FROZEN");
		expect({ ann: await usd(ann), carol: await usd(carol) }).toEqual(before);
		await cn.call("sv-money.unfreeze", { userId: carol.id });
		expect((await send(carol, { to: "ann", amount: "1", currency: "USD" })).status).toBe(201);
	});

	it("leaves every region's ledger reconciled", async () => {
		for (const region of REGION_IDS) {
			const report = await nodes[region]!.broker.call<{ ok: boolean }, unknown>("sv-money.reconcile", { region });
			expect({ region, ...report }).toMatchObject({ region, ok: true, mismatches: [], negative: [] });
		}
	});
});
