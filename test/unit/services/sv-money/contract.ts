import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../../../app/node.ts";
import { Currencies } from "../../../../services/sv-money/currencies.ts";
import type { EmbeddedRegions } from "../../../harness/embedded-regions.ts";
import { everyRegionLinked, REGION_IDS, startEmbeddedRegions } from "../../../harness/embedded-regions.ts";
import { within } from "../../../harness/waiting.ts";

/**
 * sv-money's rules, run on each SQL store it ships with (SQLite embedded, MariaDB in NATS mode):
 * three regions in one process, the ledger reconciled in every region after the suite.
 */
export function walletContract(store: string, opts: { sqlOf?: (region: string) => string; cleanup?: () => Promise<void> } = {}): void {
	const nodes: Record<string, RegionNode> = {};
	let cluster: EmbeddedRegions | undefined;
	const users: Record<string, string> = {};
	const call = <T = any>(from: string, action: string, params: unknown) => nodes[from]!.broker.call<T, unknown>(action, params);
	let keys = 0;
	const key = () => `k-${++keys}-${Date.now()}`;
	let operator = "";

	async function register(name: string, country: string): Promise<string> {
		users[name] = (await call<{ id: string }>("cn-east", "sv-user.register", { username: name, password: "Tr0ub4dor&3-money", country })).id;
		return users[name]!;
	}
	const seed = (name: string, amount: string, currency = "CNY") =>
		call("cn-east", "sv-money.adjust", { userId: users[name], amount, currency, reason: "seed", operator });
	const wallet = (name: string) =>
		call<{ frozen: boolean; balances: { currency: string; balance: string; available: string; pending: string }[] }>("ap-south", "sv-money.wallet", {
			userId: users[name]
		});
	const balance = async (name: string, currency = "CNY") => (await wallet(name)).balances.find(b => b.currency === currency);
	const send = (name: string, over: Record<string, unknown> = {}, from = "cn-east") =>
		call(from, "sv-money.transfer", { userId: users[name], to: "bob", amount: "5", currency: "CNY", idempotencyKey: key(), ...over });
	const transferOf = (name: string, id: string) => call("eu-central", "sv-money.getTransfer", { userId: users[name], id });
	const settled = (name: string, id: string, status = "completed") => within(async () => (await transferOf(name, id)).status === status, 10_000);
	const reconcileAll = () =>
		Promise.all(REGION_IDS.map(region => call<{ ok: boolean; currencies: { currency: string; sum: string }[] }>("cn-east", "sv-money.reconcile", { region })));
	/** sv-money as a region's node runs it: its relay is stopped to hold messages in the outbox. */
	const moneyIn = (region: string) =>
		nodes[region]!.broker.getLocalService("sv-money") as unknown as {
			relay: { stop(): Promise<void>; start(): void };
			batches: { stats: { batches: number; transfers: number } };
		};
	const dbOf = (region: string) => nodes[region]!.stores.sql.db;

	describe(`sv-money on ${store}`, () => {
		beforeAll(async () => {
			cluster = await startEmbeddedRegions({
				namespacePrefix: `svmoney-${store}-`,
				services: ["sv-region", "sv-user", "sv-money"],
				env: { EDGEHOME_MONEY_RELAY_MS: "50", EDGEHOME_MONEY_HOLD_SWEEP_MS: "200" },
				sqlOf: opts.sqlOf
			});
			Object.assign(nodes, cluster.nodes);
			await everyRegionLinked(cluster, 20_000);
			operator = await register("ops", "CN");
			for (const [name, country] of [
				["alice", "CN"],
				["bob", "CN"],
				["carol", "CN"],
				["dieter", "DE"],
				["priya", "IN"],
				["mallory", "CN"]
			] as const)
				await register(name, country);
			await seed("alice", "10000");
		}, 120_000);

		afterAll(async () => {
			try {
				if (cluster) for (const r of await reconcileAll()) expect(r).toMatchObject({ ok: true });
			} finally {
				await cluster?.stop();
				await opts.cleanup?.();
			}
		});

		it("moves money within a region at once, both sides recorded, from any region's node", async () => {
			const res = await send("alice", { to: "bob", amount: "1250" }, "ap-south");
			expect(res).toMatchObject({ replayed: false, transfer: { status: "completed", from: users.alice, to: users.bob, amount: "1250", currency: "CNY" } });
			expect(await balance("alice")).toMatchObject({ balance: "8750", available: "8750", pending: "0" });
			expect(await balance("bob")).toMatchObject({ balance: "1250" });
			expect(await transferOf("bob", res.transfer.id)).toMatchObject({ status: "completed", from: users.alice });
			expect(await send("alice", { to: users.bob, amount: "1" })).toMatchObject({ transfer: { to: users.bob } });
		});

		it("replays a repeated key with the first answer, and refuses the key with another request", async () => {
			const k = key();
			const first = await send("alice", { to: users.bob, amount: "10", idempotencyKey: k });
			const again = await send("alice", { to: users.bob, amount: "10", idempotencyKey: k }, "eu-central");
			expect(again).toEqual({ replayed: true, transfer: first.transfer });
			await expect(send("alice", { to: users.bob, amount: "11", idempotencyKey: k })).rejects.toMatchObject({ type: "IDEMPOTENCY_KEY_REUSED", code: 422 });
			await expect(send("alice", { to: users.carol, amount: "10", idempotencyKey: k })).rejects.toMatchObject({ type: "IDEMPOTENCY_KEY_REUSED" });
			expect(await balance("alice")).toMatchObject({ balance: "8739" });
		});

		it("applies one transfer when the same key is sent many times at once", async () => {
			const k = key();
			const before = BigInt((await balance("alice"))!.balance);
			const answers = await Promise.all(Array.from({ length: 12 }, () => send("alice", { to: "carol", amount: "3", idempotencyKey: k })));
			expect(new Set(answers.map(a => a.transfer.id)).size).toBe(1);
			expect(answers.filter(a => !a.replayed).length).toBe(1);
			expect(BigInt((await balance("alice"))!.balance)).toBe(before - 3n);
		});

		it("refuses bad requests with their codes and changes nothing", async () => {
			const before = await wallet("alice");
			for (const amount of ["0", "-5", "1.5", 1.5, 7, "abc", "", "1e3", "1000000000000000000", "10000000000000001"])
				await expect(send("alice", { amount }), `amount ${amount}`).rejects.toMatchObject({ type: "AMOUNT_INVALID", code: 422 });
			for (const currency of ["XAU", "usd", "ZZZ"])
				await expect(send("alice", { currency })).rejects.toMatchObject({ type: "CURRENCY_NOT_SUPPORTED", code: 422 });
			await expect(send("alice", { to: "nobody-here" })).rejects.toMatchObject({ type: "RECIPIENT_NOT_FOUND", code: 404 });
			await expect(send("alice", { to: "0".repeat(26) })).rejects.toMatchObject({ type: "RECIPIENT_NOT_FOUND" });
			await expect(send("alice", { to: "alice" })).rejects.toMatchObject({ type: "TRANSFER_TO_SELF", code: 422 });
			await expect(send("alice", { to: users.alice })).rejects.toMatchObject({ type: "TRANSFER_TO_SELF" });
			await expect(send("alice", { amount: "99999" })).rejects.toMatchObject({
				type: "INSUFFICIENT_FUNDS",
				code: 422,
				data: { available: before.balances[0]!.available }
			});
			await expect(send("alice", { amount: "5", currency: "USD" })).rejects.toMatchObject({ type: "INSUFFICIENT_FUNDS" });
			await expect(send("alice", { idempotencyKey: "has space" })).rejects.toMatchObject({ type: "VALIDATION_ERROR" });
			await expect(send("alice", { extra: 1 })).rejects.toMatchObject({ type: "VALIDATION_ERROR" });
			expect(await wallet("alice")).toEqual(before);
			await expect(transferOf("alice", "00000000-0000-0000-0000-000000000000")).rejects.toMatchObject({ type: "TRANSFER_NOT_FOUND", code: 404 });
		});

		it("never lets concurrent transfers overdraw a balance", async () => {
			await seed("carol", "1000");
			const start = BigInt((await balance("carol"))!.balance);
			const outcomes = await Promise.allSettled(Array.from({ length: 30 }, (_, i) => send("carol", { to: i % 2 ? "bob" : "dieter", amount: "100" })));
			const ok = outcomes.filter(o => o.status === "fulfilled").length;
			const refused = outcomes.filter(o => o.status === "rejected" && (o.reason as { type?: string }).type === "INSUFFICIENT_FUNDS").length;
			expect(ok + refused).toBe(30);
			expect(BigInt(ok) * 100n).toBeLessThanOrEqual(start);
			expect(BigInt((await balance("carol"))!.balance)).toBe(start - BigInt(ok) * 100n);
		});

		it("pays one account from many payers at once (a hot account) without losing a credit, many transfers to a batch", async () => {
			const before = BigInt((await balance("mallory"))?.balance ?? "0");
			const { stats } = moneyIn("cn-east").batches;
			const [batches, transfers] = [stats.batches, stats.transfers];
			const payers = ["alice", "bob", "carol"];
			const sent = await Promise.all(
				Array.from({ length: 45 }, (_, i) =>
					send(payers[i % 3]!, { to: "mallory", amount: "2" }).then(
						() => 2n,
						() => 0n
					)
				)
			);
			expect(BigInt((await balance("mallory"))!.balance)).toBe(before + sent.reduce((a, b) => a + b, 0n));
			expect(stats.transfers - transfers).toBe(sent.filter(s => s > 0n).length);
			expect(stats.batches - batches).toBeLessThan((stats.transfers - transfers) / 2);
		});

		it("sends money to another region: pending, then completed once the payee's home credited it", async () => {
			const res = await send("alice", { to: "dieter", amount: "300" });
			expect(res.transfer).toMatchObject({ status: "pending", completedAt: null });
			await settled("alice", res.transfer.id);
			expect(await transferOf("dieter", res.transfer.id)).toMatchObject({ status: "completed", from: users.alice, amount: "300" });
			expect(BigInt((await balance("dieter"))!.balance)).toBeGreaterThanOrEqual(300n);
			for (const r of await reconcileAll()) expect(r).toMatchObject({ ok: true });
		});

		it("applies a credit delivered twice at once only once (a redelivery while the first still runs)", async () => {
			await moneyIn("cn-east").relay.stop();
			const before = BigInt((await balance("dieter"))?.balance ?? "0");
			let id = "";
			try {
				id = (await send("alice", { to: "dieter", amount: "41" })).transfer.id;
				const queued = await dbOf("cn-east").selectFrom("money_outbox").select("payload").where("channel", "=", "money.credit").execute();
				const credit = queued.map(r => JSON.parse(r.payload as string)).find(m => m.transferId === id);
				expect(credit, "the credit waits in the payer's outbox").toBeDefined();
				const outcomes = await Promise.all(Array.from({ length: 6 }, () => call<{ outcome: string }>("eu-central", "sv-money.applyCredit", credit)));
				expect(outcomes.map(o => o.outcome).sort()).toEqual(["applied", "repeat", "repeat", "repeat", "repeat", "repeat"]);
			} finally {
				moneyIn("cn-east").relay.start();
			}
			await settled("alice", id);
			expect(BigInt((await balance("dieter"))!.balance)).toBe(before + 41n);
			const credited = await dbOf("eu-central")
				.selectFrom("money_entries")
				.select("amount")
				.where("transfer_id", "=", id)
				.where("account_owner", "=", users.dieter!)
				.execute();
			expect(credited.length, "one credit entry for the payee").toBe(1);
			for (const r of await reconcileAll()) expect(r).toMatchObject({ ok: true });
		});

		it("refunds a cross-region transfer to a frozen wallet, failed with the reason", async () => {
			await call("cn-east", "sv-money.freeze", { userId: users.dieter, reason: "fraud check" });
			const before = await balance("alice");
			const res = await send("alice", { to: "dieter", amount: "7" });
			await settled("alice", res.transfer.id, "failed");
			expect(await transferOf("alice", res.transfer.id)).toMatchObject({ reason: "WALLET_FROZEN" });
			expect(await balance("alice")).toEqual(before);
			await call("cn-east", "sv-money.unfreeze", { userId: users.dieter });
		});

		it("refunds a transfer in a currency the payee's region does not hold", async () => {
			const payeeSide = nodes["eu-central"]!.broker.getLocalService("sv-money") as unknown as { currencies: Currencies };
			const held = payeeSide.currencies;
			// As eu-central would run with EDGEHOME_MONEY_CURRENCIES=EUR.
			payeeSide.currencies = new Currencies("EUR");
			try {
				const before = await balance("alice");
				const res = await send("alice", { to: "dieter", amount: "9" });
				await settled("alice", res.transfer.id, "failed");
				expect(await transferOf("alice", res.transfer.id)).toMatchObject({ reason: "CURRENCY_NOT_SUPPORTED" });
				expect(await transferOf("dieter", res.transfer.id)).toMatchObject({ status: "failed", reason: "CURRENCY_NOT_SUPPORTED" });
				expect(await balance("alice")).toEqual(before);
			} finally {
				payeeSide.currencies = held;
			}
		});

		it("refuses a frozen payer and a frozen payee in the same region with 423, changing nothing", async () => {
			await call("cn-east", "sv-money.freeze", { userId: users.bob });
			const before = [await wallet("alice"), await wallet("bob")];
			await expect(send("alice", { to: "bob" })).rejects.toMatchObject({ type: "WALLET_FROZEN", code: 423 });
			await expect(send("bob", { to: "alice" })).rejects.toMatchObject({ type: "WALLET_FROZEN", code: 423 });
			expect([await wallet("alice"), await wallet("bob")]).toEqual([before[0], { ...before[1], frozen: true }]);
			expect(await call("cn-east", "sv-money.unfreeze", { userId: users.bob })).toEqual({ userId: users.bob, frozen: false });
		});

		it("adjusts through issuance, in either direction, never below zero", async () => {
			const adjusted = await call("eu-central", "sv-money.adjust", { userId: users.priya, amount: "500", currency: "INR", reason: "welcome bonus", operator });
			expect(adjusted).toMatchObject({ status: "completed", from: "system:issuance", to: users.priya, amount: "500", memo: "welcome bonus" });
			await call("cn-east", "sv-money.adjust", { userId: users.priya, amount: "-200", currency: "INR", reason: "correction", operator });
			expect(await balance("priya", "INR")).toMatchObject({ balance: "300" });
			await expect(
				call("cn-east", "sv-money.adjust", { userId: users.priya, amount: "-301", currency: "INR", reason: "too much", operator })
			).rejects.toMatchObject({
				type: "INSUFFICIENT_FUNDS"
			});
			await expect(call("cn-east", "sv-money.adjust", { userId: users.priya, amount: "5", currency: "INR", reason: "", operator })).rejects.toMatchObject({
				type: "VALIDATION_ERROR"
			});
			expect(await balance("priya", "INR")).toMatchObject({ balance: "300" });
		});

		it("holds funds, then captures or voids them once; an expired hold gives them back", async () => {
			const placed = await call("cn-east", "sv-money.placeHold", { userId: users.alice, to: "bob", amount: "100", currency: "CNY", idempotencyKey: key() });
			expect(placed.hold).toMatchObject({ status: "pending", transferId: null, amount: "100" });
			const held = (await balance("alice"))!;
			expect(held.pending).toBe("100");
			expect(BigInt(held.balance) - BigInt(held.available)).toBe(100n);
			await expect(send("alice", { amount: held.balance })).rejects.toMatchObject({ type: "INSUFFICIENT_FUNDS" });
			const captured = await call("cn-east", "sv-money.captureHold", { userId: users.alice, id: placed.hold.id });
			expect(captured).toMatchObject({ status: "captured", transferId: expect.any(String) });
			expect(await transferOf("bob", captured.transferId)).toMatchObject({ amount: "100", status: "completed" });
			await expect(call("cn-east", "sv-money.voidHold", { userId: users.alice, id: placed.hold.id })).rejects.toMatchObject({
				type: "HOLD_NOT_PENDING",
				code: 409
			});
			await expect(call("cn-east", "sv-money.captureHold", { userId: users.alice, id: placed.hold.id })).rejects.toMatchObject({ type: "HOLD_NOT_PENDING" });
			const voided = await call("cn-east", "sv-money.placeHold", { userId: users.alice, to: "dieter", amount: "40", currency: "CNY", idempotencyKey: key() });
			expect(await call("cn-east", "sv-money.voidHold", { userId: users.alice, id: voided.hold.id })).toMatchObject({ status: "voided" });
			const short = await call("cn-east", "sv-money.placeHold", {
				userId: users.alice,
				to: "bob",
				amount: "50",
				currency: "CNY",
				expiresInSeconds: 1,
				idempotencyKey: key()
			});
			await within(async () => (await call("cn-east", "sv-money.getHold", { userId: users.alice, id: short.hold.id })).status === "expired", 5000);
			await within(async () => (await balance("alice"))!.pending === "0", 5000);
			await expect(call("cn-east", "sv-money.captureHold", { userId: users.alice, id: short.hold.id })).rejects.toMatchObject({ type: "HOLD_NOT_PENDING" });
			await expect(call("cn-east", "sv-money.getHold", { userId: users.bob, id: short.hold.id })).rejects.toMatchObject({ type: "HOLD_NOT_FOUND", code: 404 });
		});

		it("captures a hold for a payee of another region", async () => {
			const placed = await call("cn-east", "sv-money.placeHold", { userId: users.alice, to: "priya", amount: "25", currency: "CNY", idempotencyKey: key() });
			const captured = await call("cn-east", "sv-money.captureHold", { userId: users.alice, id: placed.hold.id });
			await settled("alice", captured.transferId);
			expect(await balance("priya")).toMatchObject({ balance: "25" });
		});

		it("lists entries newest first, page by page, with their counterparties", async () => {
			const first = await call("cn-east", "sv-money.entries", { userId: users.alice, currency: "CNY", limit: 2 });
			expect(first.items).toHaveLength(2);
			expect(first.nextCursor).toEqual(expect.any(String));
			const second = await call("cn-east", "sv-money.entries", { userId: users.alice, currency: "CNY", limit: 2, cursor: first.nextCursor });
			expect(Number(second.items[0].id)).toBeLessThan(Number(first.items[1].id));
			const all = await call("cn-east", "sv-money.entries", { userId: users.alice, limit: 100 });
			expect(all.items.at(-1)).toMatchObject({ amount: "10000", kind: "adjustment", counterparty: "system:issuance" });
			await expect(call("cn-east", "sv-money.entries", { userId: users.alice, limit: 101 })).rejects.toMatchObject({ type: "VALIDATION_ERROR" });
			await expect(call("cn-east", "sv-money.entries", { userId: users.alice, cursor: "forged" })).rejects.toMatchObject({ type: "VALIDATION_ERROR" });
		});

		it("moves a wallet with its holds and in-flight transfers; each settles once, and every region still reconciles", async () => {
			await seed("bob", "500");
			const hold = await call("cn-east", "sv-money.placeHold", { userId: users.bob, to: "alice", amount: "60", currency: "CNY", idempotencyKey: key() });
			// Messages wait in their outboxes: bob's outgoing one in cn-east, dieter's incoming one for bob in eu-central.
			await moneyIn("cn-east").relay.stop();
			await moneyIn("eu-central").relay.stop();
			await seed("dieter", "100");
			const outgoing = await send("bob", { to: "dieter", amount: "70" });
			const incoming = await call("eu-central", "sv-money.transfer", {
				userId: users.dieter,
				to: users.bob,
				amount: "30",
				currency: "CNY",
				idempotencyKey: key()
			});
			const before = await balance("bob");
			await call("cn-east", "sv-region.move", { userId: users.bob, to: "ap-south" });
			expect(await balance("bob")).toEqual(before);
			moneyIn("cn-east").relay.start();
			moneyIn("eu-central").relay.start();
			await settled("bob", outgoing.transfer.id);
			await settled("dieter", incoming.transfer.id);
			expect(await call("ap-south", "sv-money.captureHold", { userId: users.bob, id: hold.hold.id })).toMatchObject({ status: "captured" });
			expect(BigInt((await balance("bob"))!.balance)).toBe(BigInt(before!.balance) + 30n - 60n);
			for (const region of REGION_IDS) {
				const rows = await dbOf(region)
					.selectFrom("money_transfers")
					.select(["owner_id", "id"])
					.where("id", "in", [outgoing.transfer.id, incoming.transfer.id])
					.execute();
				expect(rows.length, region).toBe(region === "ap-south" ? 2 : region === "eu-central" ? 2 : 0);
			}
			for (const r of await reconcileAll()) expect(r).toMatchObject({ ok: true });
		});

		it("reconciliation finds a balance edited behind the ledger's back", async () => {
			await sql`update money_accounts set balance = balance + 1 where owner_id = ${users.alice} and currency = 'CNY'`.execute(dbOf("cn-east"));
			const broken = await call("cn-east", "sv-money.reconcile", { region: "cn-east" });
			expect(broken).toMatchObject({
				ok: false,
				mismatches: [{ account: users.alice, currency: "CNY" }],
				currencies: expect.arrayContaining([{ currency: "CNY", sum: "1", ok: false }])
			});
			await sql`update money_accounts set balance = balance - 1 where owner_id = ${users.alice} and currency = 'CNY'`.execute(dbOf("cn-east"));
			expect(await call("cn-east", "sv-money.reconcile", { region: "cn-east" })).toMatchObject({ ok: true, mismatches: [], negative: [] });
		});
	});
}
