import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../app/node.ts";
import type { EmbeddedRegions } from "../harness/embedded-regions.ts";
import { everyFeedHeard, REGION_IDS as ids, startEmbeddedRegions } from "../harness/embedded-regions.ts";
import type { HttpAnswer } from "../harness/gateways.ts";
import { gatewaySchemas, gatewayUrl, http } from "../harness/gateways.ts";
import { failureOf } from "../harness/waiting.ts";
import { expectError } from "./expect-error.ts";

/*
 * sv-money's staff routes through the real api-cms gateway of cn-east: who may do what (support
 * reads, ops and admins adjust, freeze and reconcile), what each does to a wallet homed in another
 * region, and that every refused request changes nothing.
 */

const nodes: Record<string, RegionNode> = {};
let cluster: EmbeddedRegions | undefined;
const cms = (method: string, path: string, opts?: Parameters<typeof http>[3]) => http(gatewayUrl(nodes["cn-east"]!.broker, "api-cms"), method, path, opts);

/** Staff by role (plain: an ordinary user) with their api-cms tokens, and the customers whose wallets they handle (homed in eu-central). */
type Role = "plain" | "support" | "ops" | "admin";
const token: Record<Role, string> = { plain: "", support: "", ops: "", admin: "" };
const staffId: Record<Role, string> = { plain: "", support: "", ops: "", admin: "" };
let customer: { id: string; username: string };
let payee: { id: string; username: string };

async function register(username: string, password: string, country?: string): Promise<{ id: string; username: string; region: string }> {
	const res = await cms("POST", "/api/v1/auth/register", { body: { username, password, ...(country ? { country } : {}) } });
	expect(res.status, res.text).toBe(201);
	return res.body;
}

/** A staff member of `role`, logged in at api-cms. */
async function hire(role: Role): Promise<void> {
	const password = `${role} works here 1`;
	const user = await register(`wallet-${role}`, password);
	if (role !== "plain") await nodes["cn-east"]!.broker.call("auth-rbac.grant", { userId: user.id, role });
	const res = await cms("POST", "/api/v1/auth/login", { body: { login: user.username, password } });
	expect(res.status, res.text).toBe(200);
	staffId[role] = user.id;
	token[role] = res.body.accessToken;
}

const walletPath = (userId: string) => `/api/v1/admin/users/${userId}/wallet`;
const adjust = (who: Role, userId: string, body: unknown) => cms("POST", `${walletPath(userId)}/adjustments`, { token: token[who], body });
const wallet = async (userId: string) => {
	const res = await cms("GET", walletPath(userId), { token: token.support });
	expect(res.status, res.text).toBe(200);
	return res.body;
};

/** Every region's ledger rows: what a refused request must leave as it was. */
async function ledgers(): Promise<Record<string, unknown>> {
	const out: Record<string, unknown> = {};
	for (const id of ids) {
		const db = nodes[id]!.stores.sql.db;
		const count = async (table: string) =>
			Number(
				(
					await db
						.selectFrom(table)
						.select(eb => eb.fn.countAll().as("n"))
						.executeTakeFirstOrThrow()
				).n
			);
		const accounts = await db
			.selectFrom("money_accounts")
			.select(["owner_id", "currency", "balance", "held"])
			.orderBy("owner_id")
			.orderBy("currency")
			.execute();
		const wallets = await db.selectFrom("money_wallets").select(["user_id", "frozen"]).orderBy("user_id").execute();
		out[id] = {
			accounts: accounts.map(a => `${a.owner_id} ${a.currency} ${a.balance} ${a.held}`),
			wallets,
			transfers: await count("money_transfers"),
			entries: await count("money_entries")
		};
	}
	return out;
}

/** The customer pays the payee 1.00 USD, as api-www would ask on their behalf. */
function pay(memo: string) {
	return nodes["cn-east"]!.broker.call<{ transfer: { status: string; amount: string }; replayed: boolean }, unknown>("sv-money.transfer", {
		userId: customer.id,
		to: payee.username,
		amount: "100",
		currency: "USD",
		memo,
		idempotencyKey: randomUUID()
	});
}

function expectReconciled(res: HttpAnswer, region: string): void {
	expect(res.status, res.text).toBe(200);
	expect(res.body).toMatchObject({ region, ok: true, mismatches: [], negative: [] });
	expect(res.body.currencies.filter((c: { sum: string; ok: boolean }) => c.sum !== "0" || !c.ok)).toEqual([]);
}

beforeAll(async () => {
	cluster = await startEmbeddedRegions({
		namespacePrefix: "wallet-admin-",
		services: ["sv-region", "sv-user", "auth-jwt", "auth-rbac", "sv-money"],
		schemas: gatewaySchemas()
	});
	Object.assign(nodes, cluster.nodes);
	await everyFeedHeard(cluster, 10_000);
	for (const role of Object.keys(token) as Role[]) await hire(role);
	customer = await register("wallet-customer", "my own money 1", "DE");
	payee = await register("wallet-payee", "paid in full 1", "DE");
}, 60_000);

afterAll(() => cluster?.stop());

describe("api-cms wallet routes: permissions", () => {
	it("lets support read a wallet, an empty one to begin with", async () => {
		expect(await wallet(customer.id)).toEqual({ userId: customer.id, frozen: false, balances: [] });
	});

	it("refuses support every change and the reconciliation (403), and an ordinary user even the read, changing nothing", async () => {
		const before = await ledgers();
		const refused = [
			await adjust("support", customer.id, { amount: "500", currency: "USD", reason: "goodwill" }),
			await cms("POST", `${walletPath(customer.id)}/freeze`, { token: token.support, body: { reason: "looks odd" } }),
			await cms("POST", `${walletPath(customer.id)}/unfreeze`, { token: token.support, body: {} }),
			await cms("GET", "/api/v1/admin/wallet/reconciliation", { token: token.support }),
			await cms("GET", walletPath(customer.id), { token: token.plain }),
			await adjust("plain", customer.id, { amount: "500", currency: "USD", reason: "for me" })
		];
		for (const res of refused) expectError(res, 403, "FORBIDDEN");
		expect(await ledgers()).toEqual(before);
	});

	it("documents each route's permission in the OpenAPI document", async () => {
		const doc = (await cms("GET", "/api/v1/openapi.json")).body;
		const permission = (path: string, method: string) => doc.paths[path]?.[method]?.["x-permission"];
		expect(permission("/api/v1/admin/users/{id}/wallet", "get")).toEqual({ resource: "wallet", action: "read" });
		expect(permission("/api/v1/admin/users/{id}/wallet/adjustments", "post")).toEqual({ resource: "wallet", action: "adjust" });
		expect(permission("/api/v1/admin/users/{id}/wallet/freeze", "post")).toEqual({ resource: "wallet", action: "freeze" });
		expect(permission("/api/v1/admin/users/{id}/wallet/unfreeze", "post")).toEqual({ resource: "wallet", action: "freeze" });
		expect(permission("/api/v1/admin/wallet/reconciliation", "get")).toEqual({ resource: "wallet", action: "reconcile" });
	});
});

describe("api-cms wallet routes: adjustments, freezing, reconciliation", () => {
	it("lets ops credit a wallet from issuance (201) and take part of it back, the wallet showing the balance", async () => {
		const credit = await adjust("ops", customer.id, { amount: "10000", currency: "USD", reason: "welcome credit" });
		expect(credit.status, credit.text).toBe(201);
		expect(credit.body).toMatchObject({
			id: expect.any(String),
			status: "completed",
			from: "system:issuance",
			to: customer.id,
			amount: "10000",
			currency: "USD"
		});
		// The operator's reason is kept with the transfer, as its memo.
		expect(credit.body).toMatchObject({ memo: "welcome credit", reason: null });
		const debit = await adjust("ops", customer.id, { amount: "-2500", currency: "USD", reason: "duplicate credit" });
		expect(debit.status, debit.text).toBe(201);
		expect(debit.body).toMatchObject({ status: "completed", from: customer.id, to: "system:issuance", amount: "2500", currency: "USD" });
		expect(await wallet(customer.id)).toEqual({
			userId: customer.id,
			frozen: false,
			balances: [{ currency: "USD", balance: "7500", available: "7500", pending: "0" }]
		});
		// The operator who made each adjustment is recorded with it, in the user's home.
		const recorded = await nodes["eu-central"]!.stores.sql.db.selectFrom("money_transfers")
			.select(["id", "operator_id"])
			.where("id", "in", [credit.body.id, debit.body.id])
			.execute();
		expect(recorded.map(r => r.operator_id)).toEqual([staffId.ops, staffId.ops]);
	});

	it("lets an admin adjust too, in a currency without minor units", async () => {
		const res = await adjust("admin", customer.id, { amount: "3000", currency: "JPY", reason: "campaign" });
		expect(res.status, res.text).toBe(201);
		expect((await wallet(customer.id)).balances).toEqual([
			{ currency: "JPY", balance: "3000", available: "3000", pending: "0" },
			{ currency: "USD", balance: "7500", available: "7500", pending: "0" }
		]);
	});

	it("freezes a wallet: the user's transfer answers 423 WALLET_FROZEN until ops unfreeze it", async () => {
		const frozen = await cms("POST", `${walletPath(customer.id)}/freeze`, { token: token.ops, body: { reason: "chargeback under review" } });
		expect(frozen.status, frozen.text).toBe(200);
		expect(frozen.body).toEqual({ userId: customer.id, frozen: true });
		expect((await wallet(customer.id)).frozen).toBe(true);
		const before = await ledgers();
		expect(await failureOf(pay("while frozen"))).toMatchObject({ type: "WALLET_FROZEN", code: 423 });
		expect(await ledgers()).toEqual(before);

		const unfrozen = await cms("POST", `${walletPath(customer.id)}/unfreeze`, { token: token.ops, body: {} });
		expect(unfrozen.status, unfrozen.text).toBe(200);
		expect(unfrozen.body).toEqual({ userId: customer.id, frozen: false });
		expect(await pay("after unfreezing")).toMatchObject({ transfer: { status: "completed", amount: "100" }, replayed: false });
		expect((await wallet(customer.id)).balances).toContainEqual({ currency: "USD", balance: "7400", available: "7400", pending: "0" });
		expect((await wallet(payee.id)).balances).toEqual([{ currency: "USD", balance: "100", available: "100", pending: "0" }]);
		// A reason is optional, and an admin may freeze too.
		for (const action of ["freeze", "unfreeze"]) {
			const res = await cms("POST", `${walletPath(payee.id)}/${action}`, { token: token.admin, body: {} });
			expect(res.body).toEqual({ userId: payee.id, frozen: action === "freeze" });
		}
	});

	it("reconciles this region by default and another on request: ok, every currency summing to 0", async () => {
		expectReconciled(await cms("GET", "/api/v1/admin/wallet/reconciliation", { token: token.ops }), "cn-east");
		const home = await cms("GET", "/api/v1/admin/wallet/reconciliation?region=eu-central", { token: token.ops });
		expectReconciled(home, "eu-central");
		expect(home.body.currencies.map((c: { currency: string }) => c.currency).sort()).toEqual(["JPY", "USD"]);
		expect(home.body.accounts).toBeGreaterThanOrEqual(4);
		expectReconciled(await cms("GET", "/api/v1/admin/wallet/reconciliation?region=ap-south", { token: token.admin }), "ap-south");
	});
});

describe("api-cms wallet routes: refused requests change nothing", () => {
	it("refuses a bad adjustment with its code and field, writing nothing", async () => {
		const before = await ledgers();
		const body = { amount: "500", currency: "USD", reason: "correction" };
		// sv-money judges the amount and the currency.
		expectError(await adjust("ops", customer.id, { ...body, amount: "0" }), 422, "AMOUNT_INVALID");
		expectError(await adjust("ops", customer.id, { ...body, amount: "1.50" }), 422, "AMOUNT_INVALID");
		expectError(await adjust("ops", customer.id, { ...body, amount: "1".repeat(19) }), 422, "AMOUNT_INVALID");
		expectError(await adjust("ops", customer.id, { ...body, amount: 500 }), 422, "AMOUNT_INVALID");
		expectError(await adjust("ops", customer.id, { ...body, currency: "XAU" }), 422, "CURRENCY_NOT_SUPPORTED");
		expectError(await adjust("ops", customer.id, { ...body, amount: "-7401" }), 422, "INSUFFICIENT_FUNDS");
		// The gateway checks the request's form.
		const invalid: [Record<string, unknown>, string][] = [
			[{ amount: body.amount, currency: body.currency }, "reason"],
			[{ ...body, reason: "   " }, "reason"],
			[{ ...body, reason: "x".repeat(201) }, "reason"],
			[{ ...body, amount: "" }, "amount"],
			[{ ...body, currency: "usd" }, "currency"],
			[{ ...body, operator: payee.id }, "operator"]
		];
		for (const [request, field] of invalid) {
			const res = await adjust("ops", customer.id, request);
			expectError(res, 400, "VALIDATION_FAILED");
			expect(res.body.error.details.map((d: { field: string; message: string }) => `${d.field}: ${d.message}`).join("\n")).toContain(field);
		}
		expectError(await adjust("ops", "0".repeat(26), body), 404, "NOT_FOUND");
		expectError(await adjust("ops", "not-a-user", body), 400, "VALIDATION_FAILED");
		expectError(await cms("POST", `${walletPath(customer.id)}/freeze`, { token: token.ops, body: { reason: "" } }), 400, "VALIDATION_FAILED");
		expectError(await cms("POST", `${walletPath(customer.id)}/unfreeze`, { token: token.ops, body: { reason: "no reason taken" } }), 400, "VALIDATION_FAILED");
		expectError(await cms("GET", "/api/v1/admin/wallet/reconciliation?region=Mars", { token: token.ops }), 400, "VALIDATION_FAILED");
		expect(await ledgers()).toEqual(before);
		expect((await wallet(customer.id)).balances).toContainEqual({ currency: "USD", balance: "7400", available: "7400", pending: "0" });
	});

	it("ends with every region reconciled", async () => {
		for (const region of ids) expectReconciled(await cms("GET", `/api/v1/admin/wallet/reconciliation?region=${region}`, { token: token.ops }), region);
	});
});
