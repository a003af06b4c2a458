import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../../app/node.ts";
import type { EmbeddedRegions } from "../../harness/embedded-regions.ts";
import { REGION_IDS, startEmbeddedRegions } from "../../harness/embedded-regions.ts";
import { within } from "../../harness/waiting.ts";

const nodes: Record<string, RegionNode> = {};
let cluster: EmbeddedRegions | undefined;
const users: Record<string, string> = {};
const call = <T = any>(from: string, action: string, params: unknown) => nodes[from]!.broker.call<T, unknown>(action, params);
let keys = 0;
const key = () => `k-${++keys}-${Date.now()}`;

async function register(name: string, country: string): Promise<string> {
	const { id } = await call<{ id: string }>("cn-east", "sv-user.register", { username: name, password: "Tr0ub4dor&3-money", country });
	users[name] = id;
	return id;
}

const balance = async (user: string, currency = "CNY") =>
	(await call<{ balances: { currency: string; balance: string; available: string; pending: string }[] }>("cn-east", "sv-money.wallet", { userId: users[user] })).balances.find(
		b => b.currency === currency
	);

async function reconcileAll() {
	return Promise.all(REGION_IDS.map(region => call<{ ok: boolean; currencies: { currency: string; sum: string }[] }>("cn-east", "sv-money.reconcile", { region })));
}

beforeAll(async () => {
	cluster = await startEmbeddedRegions({
		namespacePrefix: "svmoney-",
		services: ["sv-region", "sv-user", "sv-money"],
		env: { EDGEHOME_MONEY_RELAY_MS: "50", EDGEHOME_MONEY_HOLD_SWEEP_MS: "200" }
	});
	Object.assign(nodes, cluster.nodes);
	await register("alice", "CN");
	await register("bob", "CN");
	await register("dieter", "DE");
	const admin = await register("ops", "CN");
	await call("cn-east", "sv-money.adjust", { userId: users.alice, amount: "10000", currency: "CNY", reason: "seed", operator: admin });
}, 60_000);

afterAll(async () => {
	for (const r of await reconcileAll()) expect(r).toMatchObject({ ok: true });
	await cluster?.stop();
});

describe("sv-money", () => {
	it("moves money within a region at once, both sides recorded", async () => {
		const res = await call("ap-south", "sv-money.transfer", { userId: users.alice, to: "bob", amount: "1250", currency: "CNY", idempotencyKey: key() });
		expect(res).toMatchObject({ replayed: false, transfer: { status: "completed", from: users.alice, to: users.bob, amount: "1250", currency: "CNY" } });
		expect(await balance("alice")).toMatchObject({ balance: "8750", available: "8750" });
		expect(await balance("bob")).toMatchObject({ balance: "1250" });
		expect(await call("cn-east", "sv-money.getTransfer", { userId: users.bob, id: res.transfer.id })).toMatchObject({ status: "completed" });
	});

	it("replays a repeated key and refuses the key with another request", async () => {
		const k = key();
		const first = await call("cn-east", "sv-money.transfer", { userId: users.alice, to: users.bob, amount: "10", currency: "CNY", idempotencyKey: k });
		const again = await call("eu-central", "sv-money.transfer", { userId: users.alice, to: users.bob, amount: "10", currency: "CNY", idempotencyKey: k });
		expect(again).toMatchObject({ replayed: true, transfer: { id: first.transfer.id } });
		await expect(call("cn-east", "sv-money.transfer", { userId: users.alice, to: users.bob, amount: "11", currency: "CNY", idempotencyKey: k })).rejects.toMatchObject({
			type: "IDEMPOTENCY_KEY_REUSED",
			code: 422
		});
		expect(await balance("alice")).toMatchObject({ balance: "8740" });
	});

	it("refuses bad requests and changes nothing", async () => {
		const before = await balance("alice");
		const t = (over: Record<string, unknown>) => call("cn-east", "sv-money.transfer", { userId: users.alice, to: "bob", amount: "5", currency: "CNY", idempotencyKey: key(), ...over });
		for (const amount of ["0", "-5", "1.5", 1.5, "abc", "1000000000000000000"]) await expect(t({ amount })).rejects.toMatchObject({ type: "AMOUNT_INVALID", code: 422 });
		await expect(t({ currency: "XAU" })).rejects.toMatchObject({ type: "CURRENCY_NOT_SUPPORTED" });
		await expect(t({ to: "nobody-here" })).rejects.toMatchObject({ type: "RECIPIENT_NOT_FOUND", code: 404 });
		await expect(t({ to: "alice" })).rejects.toMatchObject({ type: "TRANSFER_TO_SELF" });
		await expect(t({ amount: "99999" })).rejects.toMatchObject({ type: "INSUFFICIENT_FUNDS" });
		expect(await balance("alice")).toEqual(before);
	});

	it("sends money to another region: pending, then completed once the payee's home credited it", async () => {
		const res = await call("cn-east", "sv-money.transfer", { userId: users.alice, to: "dieter", amount: "300", currency: "CNY", idempotencyKey: key() });
		expect(res.transfer).toMatchObject({ status: "pending" });
		await within(async () => (await call("cn-east", "sv-money.getTransfer", { userId: users.alice, id: res.transfer.id })).status === "completed", 10_000);
		expect(await balance("dieter")).toMatchObject({ balance: "300" });
		const sums = await reconcileAll();
		expect(sums.every(r => r.ok)).toBe(true);
	});

	it("refunds a cross-region transfer to a frozen wallet, failed with the reason", async () => {
		await call("cn-east", "sv-money.freeze", { userId: users.dieter });
		const before = await balance("alice");
		const res = await call("cn-east", "sv-money.transfer", { userId: users.alice, to: "dieter", amount: "7", currency: "CNY", idempotencyKey: key() });
		await within(async () => (await call("cn-east", "sv-money.getTransfer", { userId: users.alice, id: res.transfer.id })).status === "failed", 10_000);
		expect(await call("cn-east", "sv-money.getTransfer", { userId: users.alice, id: res.transfer.id })).toMatchObject({ reason: "WALLET_FROZEN" });
		expect(await balance("alice")).toEqual(before);
		await call("cn-east", "sv-money.unfreeze", { userId: users.dieter });
	});

	it("holds funds, then captures or voids them once", async () => {
		const placed = await call("cn-east", "sv-money.placeHold", { userId: users.alice, to: "bob", amount: "100", currency: "CNY", idempotencyKey: key() });
		expect(placed.hold).toMatchObject({ status: "pending" });
		const b = await balance("alice");
		expect(BigInt(b!.balance) - BigInt(b!.available)).toBe(100n);
		const captured = await call("cn-east", "sv-money.captureHold", { userId: users.alice, id: placed.hold.id });
		expect(captured).toMatchObject({ status: "captured" });
		await expect(call("cn-east", "sv-money.voidHold", { userId: users.alice, id: placed.hold.id })).rejects.toMatchObject({ type: "HOLD_NOT_PENDING" });
		const short = await call("cn-east", "sv-money.placeHold", { userId: users.alice, to: "bob", amount: "50", currency: "CNY", expiresInSeconds: 1, idempotencyKey: key() });
		await within(async () => (await call("cn-east", "sv-money.getHold", { userId: users.alice, id: short.hold.id })).status === "expired", 5000);
		await within(async () => (await balance("alice"))!.pending === "0", 5000);
	});

	it("lists entries newest first, page by page", async () => {
		const first = await call("cn-east", "sv-money.entries", { userId: users.alice, limit: 2 });
		expect(first.items).toHaveLength(2);
		const second = await call("cn-east", "sv-money.entries", { userId: users.alice, limit: 2, cursor: first.nextCursor });
		expect(Number(second.items[0].id)).toBeLessThan(Number(first.items[1].id));
	});

	it("moves a wallet with the user; the regions still reconcile", async () => {
		const before = await balance("bob");
		await call("cn-east", "sv-region.move", { userId: users.bob, to: "ap-south" });
		expect(await balance("bob")).toEqual(before);
		const res = await call("cn-east", "sv-money.transfer", { userId: users.alice, to: "bob", amount: "5", currency: "CNY", idempotencyKey: key() });
		await within(async () => (await call("cn-east", "sv-money.getTransfer", { userId: users.alice, id: res.transfer.id })).status === "completed", 10_000);
		for (const r of await reconcileAll()) expect(r).toMatchObject({ ok: true });
	});
});
