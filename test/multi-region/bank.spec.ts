import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MONEY_NODE_ENV, runBank, SETTLE_MS } from "../chaos/bank.ts";
import { CURRENCIES, homesOf, reconcileAll, registerUser, seedUsers, send, untilEveryNodeSees } from "../chaos/bank-calls.ts";
import type { TransferOp } from "../chaos/bank-checker.ts";
import { BANK_INVARIANTS, bankInvariants, checkBank } from "../chaos/bank-checker.ts";
import { Ledgers, untilSettled } from "../chaos/bank-ledgers.ts";
import { seeded } from "../chaos/nemeses.ts";
import type { NodeProcess } from "../chaos/session.ts";
import { REGIONS, Session } from "../chaos/session.ts";
import { lagLink, linkRelays } from "../harness/mirror-lag.ts";
import { within } from "../harness/waiting.ts";

/**
 * Issue #13's tests on real servers: the hub-and-edge NATS topology of three regions, a MariaDB
 * database per region, and two node processes per region running sv-region and sv-money, which
 * the nemeses SIGKILL (test/chaos/session.ts). BANK_SECONDS sets the load's length (default 60),
 * BANK_SEED replays a run's choices, BANK_VERBOSE prints the run's events as they happen, BANK_KEEP_DIR=<dir>
 * keeps the nodes' logs there and the run's databases on the server.
 */
const SECONDS = Number(process.env.BANK_SECONDS ?? 60);
const SEED = Number(process.env.BANK_SEED ?? Math.floor(Math.random() * 2 ** 31));
const USERS = 60;
const SEED_AMOUNT = 10_000n;
/** The region whose link into the hub the in-flight test stalls: what it sends and what is sent to it wait meanwhile. */
const STALLED = "eu-central";
/** Long enough for the move to come first: the new home's sweeper expires it. */
const EXPIRING_HOLD_SECONDS = 16;
const zero = Object.fromEntries(BANK_INVARIANTS.map(k => [k, 0]));

const relays = linkRelays([STALLED]);
const session = new Session({
	nodeEnv: MONEY_NODE_ENV,
	keepDir: process.env.BANK_KEEP_DIR,
	relays: { front: relays, lag: (region, delayMs) => lagLink(relays, region, delayMs === undefined ? {} : { delayMs }) },
	log: process.env.BANK_VERBOSE ? line => console.info(line) : undefined
});
/** What every adjustment so far issued, per currency: the ledgers' users and in-transit must add up to it. */
const issued: Record<string, bigint> = {};
const addIssued = (more: Record<string, bigint>) => {
	for (const [currency, n] of Object.entries(more)) issued[currency] = (issued[currency] ?? 0n) + n;
};

/** Where the in-flight test's user moves from and to. */
const FROM = "ap-south";
const TO = "cn-east";
/** The in-flight test's users (not the bank's): registered before the faults, so every mirror knows them when it starts. */
const parties = { mover: "", payer: "", payee: "", other: "" };

beforeAll(async () => {
	const started = Date.now();
	await session.start();
	await session.register(USERS);
	[parties.mover, parties.payer, parties.payee, parties.other] = await Promise.all([
		registerUser(session, FROM, "bank-mover"),
		registerUser(session, STALLED, "bank-payer"),
		registerUser(session, STALLED, "bank-payee"),
		registerUser(session, TO, "bank-other")
	]);
	addIssued(await seedUsers(session, [...session.users, parties.mover, parties.payer], SEED_AMOUNT, session.users[0]!));
	console.info(
		`bank: 3 regions, ${session.nodes.length} sv-money nodes, ${USERS} users seeded with ${SEED_AMOUNT} ${CURRENCIES.join(" and ")} in ${Date.now() - started} ms`
	);
}, 180_000);

afterAll(() => session.stop(), 60_000);

describe("issue #13: the wallet ledger on three regions with MariaDB per region, under faults", () => {
	it(`the bank test: 16 clients for ${SECONDS} s while nodes are killed, a region's NATS restarts and users move; no money made or lost`, async () => {
		const r = await runBank(session, issued, { seconds: SECONDS, clients: 16, seed: SEED, warmupSeconds: 3 });
		const samples = Object.entries(r.samples).map(([what, lines]) => `  ${what}:\n${lines.map(l => `    ${l}`).join("\n")}`);
		const report = [`bank test, seed ${r.seed}:`, r.line, `invariants ${JSON.stringify(bankInvariants(r.counts))}`, ...samples].join("\n");
		console.info(report);
		const events = `${report}\n  events:\n${session.events.map(e => `    ${e}`).join("\n")}`;
		expect(bankInvariants(r.counts), events).toEqual(zero);
		expect({ settledMs: r.settledMs !== undefined, retriesSettledMs: r.retriesSettledMs !== undefined }, events).toEqual({
			settledMs: true,
			retriesSettledMs: true
		});
		expect(r.counts.ok, "transfers were acknowledged").toBeGreaterThan(100);
		expect(r.counts.crossRegion, "transfers crossed regions").toBeGreaterThan(10);
		expect(r.counts.byStatus.failed, "credits to frozen wallets were refused and refunded").toBeGreaterThan(0);
		expect(r.counts.replaysOk + r.counts.reusesRefused, "keys were reused").toBeGreaterThan(0);
		if (SECONDS >= 30) {
			expect(r.moves.ok, "users moved").toBeGreaterThan(0);
			expect(r.kills, "nodes were killed").toBeGreaterThan(0);
			expect(r.natsRestarts, "a NATS server restarted").toBeGreaterThan(0);
		}
	}, 300_000);

	it("a user moves with pending holds and cross-region transfers in flight both ways: each settles exactly once, at the new home", async () => {
		const { mover, payer, payee, other } = parties;
		// A mirror remade after its region's NATS restart answers again only once refilled.
		await untilEveryNodeSees(session, Object.values(parties));
		const rng = seeded(SEED);
		const timings: Record<string, number> = {};
		const ledgers = await Ledgers.open(session.run);
		const on = (region: string) => session.node(region, "svc");
		const must = async <T = any>(node: NodeProcess, action: string, params: unknown): Promise<T> => {
			const reply = await node.call(action, params, 130_000);
			if (!reply.ok) throw new Error(`${action} on ${node.key}: ${reply.type} ${reply.message ?? ""}`);
			return reply.res as T;
		};
		const placeHold = async (userTo: string, amount: string, expiresInSeconds: number, key: string) =>
			(
				await must(on(FROM), "sv-money.placeHold", {
					userId: mover,
					to: userTo,
					amount,
					currency: "EUR",
					expiresInSeconds,
					idempotencyKey: `${key}-${session.run}`
				})
			).hold as { id: string };
		const transfer = async (op: TransferOp, through: NodeProcess) => {
			const attempt = await send(session, rng, op, "load", through);
			expect(attempt, `${op.key} through ${through.key}`).toMatchObject({ outcome: "ok" });
			return attempt!.transferId!;
		};
		try {
			const captured = await placeHold(payee, "300", 3600, "capture-me");
			const voided = await placeHold(other, "200", 3600, "void-me");
			// Expires after the move: the new home's sweeper gives its funds back.
			const expiring = await placeHold(payee, "100", EXPIRING_HOLD_SECONDS, "let-me-expire");
			const expiresAt = Date.now() + EXPIRING_HOLD_SECONDS * 1000;
			const incoming: TransferOp = { key: `in-${session.run}`, payer, payee: mover, amount: "700", currency: "EUR", cross: true, attempts: [] };
			const outgoing: TransferOp = { key: `out-${session.run}`, payer: mover, payee, amount: "500", currency: "EUR", cross: true, attempts: [] };

			const stall = lagLink(relays, STALLED, { scope: "all" });
			let capture = "";
			try {
				// Both credits wait: one in the stalled region's store for the mover's home, one in the mover's home for the stalled region.
				const inId = await transfer(incoming, on(STALLED));
				const outId = await transfer(outgoing, on(FROM));
				await new Promise(r => setTimeout(r, 1500));
				expect(await ledgers.transferCopies(inId), "the incoming credit is in flight").toEqual([{ region: STALLED, owner: payer, status: "pending" }]);
				expect(await ledgers.transferCopies(outId), "the outgoing credit is in flight").toEqual([{ region: FROM, owner: mover, status: "pending" }]);

				const moveStarted = Date.now();
				const moved = await must(on(TO), "sv-region.move", { userId: mover, to: TO });
				expect(moved).toMatchObject({ from: FROM, to: TO });
				timings.move = Date.now() - moveStarted;
				timings.moveDoneBeforeExpiry = expiresAt - Date.now();
				expect(await ledgers.transferCopies(outId), "the pending transfer moved with its payer").toEqual([{ region: TO, owner: mover, status: "pending" }]);
				expect(await ledgers.holdsOf(mover), "the holds moved with their payer").toEqual({
					[FROM]: [],
					[STALLED]: [],
					[TO]: [`${captured.id} pending`, `${expiring.id} pending`, `${voided.id} pending`].sort()
				});

				// Settled at the new home: a capture to the stalled region is in flight too.
				const held = await must(on(TO), "sv-money.captureHold", { userId: mover, id: captured.id });
				expect(held).toMatchObject({ status: "captured" });
				capture = held.transferId;
				expect(await must(on(TO), "sv-money.voidHold", { userId: mover, id: voided.id })).toMatchObject({ status: "voided" });
				expect(await ledgers.transferCopies(capture)).toEqual([{ region: TO, owner: mover, status: "pending" }]);
			} finally {
				await stall.resume();
			}
			const resumed = Date.now();

			const deadline = Date.now() + SETTLE_MS + 20_000;
			expect(await untilSettled(ledgers, deadline), "every transfer settled, every outbox empty").toBe(true);
			timings.settledAfterResume = Date.now() - resumed;
			await within(async () => (await ledgers.holdsOf(mover))[TO]!.includes(`${expiring.id} expired`), Math.max(1000, deadline - Date.now()));

			const [inId, outId] = [incoming, outgoing].map(op => op.attempts[0]!.transferId!);
			expect(await ledgers.transferCopies(inId!), "the incoming transfer: once at the payer, once at the mover's new home").toEqual(
				[
					{ region: STALLED, owner: payer, status: "completed" },
					{ region: TO, owner: mover, status: "completed" }
				].sort((a, b) => a.region.localeCompare(b.region))
			);
			for (const id of [outId!, capture])
				expect(await ledgers.transferCopies(id), "an outgoing transfer: once at the mover's new home, once at the payee").toEqual(
					[
						{ region: TO, owner: mover, status: "completed" },
						{ region: STALLED, owner: payee, status: "completed" }
					].sort((a, b) => a.region.localeCompare(b.region))
				);
			expect(await ledgers.holdsOf(mover)).toEqual({
				[FROM]: [],
				[STALLED]: [],
				[TO]: [`${captured.id} captured`, `${expiring.id} expired`, `${voided.id} voided`].sort()
			});
			const eur = async (userId: string) =>
				(await must<{ balances: { currency: string }[] }>(on(TO), "sv-money.wallet", { userId })).balances.find(b => b.currency === "EUR");
			expect(await eur(mover)).toEqual({ currency: "EUR", balance: "9900", available: "9900", pending: "0" });
			expect(await eur(payer)).toMatchObject({ balance: "9300" });
			expect(await eur(payee)).toMatchObject({ balance: "800" });

			const users = [...session.users, mover, payer, payee, other];
			const check = checkBank({
				regions: REGIONS,
				users: [mover, payer, payee, other],
				homes: await homesOf(session, users),
				transfers: [incoming, outgoing],
				reuses: [],
				issued,
				tables: await ledgers.read(),
				reconciliations: await reconcileAll(session)
			});
			expect(bankInvariants(check.counts), JSON.stringify(check.samples, null, 2)).toEqual(zero);
			console.info(
				`in flight: moved in ${timings.move} ms with 2 transfers in flight and 3 holds pending (the last expiring ${timings.moveDoneBeforeExpiry} ms after the move); all settled ${timings.settledAfterResume} ms after the link came back`
			);
		} finally {
			await ledgers.close();
		}
	}, 180_000);
});
