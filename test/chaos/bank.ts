import { setTimeout as sleep } from "node:timers/promises";
import { CURRENCIES, callAnywhere, callSurely, homesOf, reconcileAll, send, settle, TRANSFER_BOUND_MS, untilNobodyMoves } from "./bank-calls.ts";
import type { BankCheck, KeyReuse, TransferOp } from "./bank-checker.ts";
import { checkBank, resolution } from "./bank-checker.ts";
import { Ledgers, untilSettled } from "./bank-ledgers.ts";
import { STILL_RUNNING } from "./codes.ts";
import { seeded } from "./nemeses.ts";
import type { Session } from "./session.ts";
import { REGIONS } from "./session.ts";

/**
 * The bank test of issue #13 on the chaos session (session.ts): every node of the three regions
 * runs sv-money, clients send transfers while nemeses kill nodes, restart a region's NATS server
 * and move users; after healing, every transfer left unresolved is sent again under its key, the
 * ledgers settle, and bank-checker.ts judges the history against the tables read from MariaDB.
 */

/** The region whose NATS server the nemesis restarts. */
export const NATS_RESTARTED = "ap-south";
/** What sv-money's nodes run with: quick relays and hold sweeps, so a healed run settles in seconds. */
export const MONEY_NODE_ENV = { CHAOS_SERVICES: "sv-money", EDGEHOME_MONEY_RELAY_MS: "200", EDGEHOME_MONEY_HOLD_SWEEP_MS: "1000" };

/** A move's answer: past sv-region.move's own 120 s. */
const MOVE_BOUND_MS = 130_000;
/** After healing, moves get this long to answer, then count as unknown. */
const MOVE_SETTLE_MS = 15_000;
/** The issue's bound: no transfer stays pending longer than this after healing. */
export const SETTLE_MS = 30_000;
/** Users whose wallets are frozen for the run: what is sent to them across regions is refused there and refunded. */
const FROZEN = 3;
/** Calls a client makes for one transfer during the load, and pauses between them (its back-off). */
const CLIENT_TRIES = 4;
const CLIENT_BACKOFF_MS = [200, 600] as const;
/** Calls a transfer left unresolved gets after healing. */
const RETRIES = 10;

export interface BankOptions {
	seconds: number;
	clients: number;
	seed: number;
	/** Faults start this long after the load. */
	warmupSeconds: number;
}

export interface BankResult extends BankCheck {
	seed: number;
	moves: { ok: number; total: number; codes: Record<string, number> };
	/** Nodes SIGKILLed, and NATS restarts. */
	kills: number;
	natsRestarts: number;
	/** ms from healed to no transfer pending and every outbox empty (undefined: not within SETTLE_MS). */
	settledMs?: number;
	/** The same after the retries that followed healing, from the last retry. */
	retriesSettledMs?: number;
	line: string;
}

/** Runs `fn` over `items`, `width` at a time. */
async function inPool<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
	let next = 0;
	await Promise.all(
		Array.from({ length: width }, async () => {
			while (next < items.length) await fn(items[next++]!);
		})
	);
}

/**
 * The load, the faults, the healing, and the check. The session is started, its users registered
 * and seeded (`issued`), its nodes running sv-money.
 */
export async function runBank(session: Session, issued: Record<string, bigint>, opts: BankOptions): Promise<BankResult> {
	const users = session.users;
	const rng = seeded(opts.seed);
	const moveRng = seeded(opts.seed + 1);
	const faultRng = seeded(opts.seed + 2);
	const transfers: TransferOp[] = [];
	const acknowledged: TransferOp[] = [];
	const reuses: KeyReuse[] = [];
	const moves: { ok: number; total: number; codes: Record<string, number> } = { ok: 0, total: 0, codes: {} };
	const movesInFlight = new Set<Promise<void>>();
	let kills = 0;
	let natsRestarts = 0;
	let keys = 0;
	let loadOver = false;
	let stopLoad!: () => void;
	const loadStopped = new Promise<void>(resolve => (stopLoad = resolve));
	const wait = async (ms: number) => {
		if (loadOver) return false;
		await Promise.race([sleep(ms), loadStopped]);
		return !loadOver;
	};
	const home = (u: string) => session.homeOf(u)?.region;

	const newTransfer = (): TransferOp => {
		const payer = rng.pick(users);
		const cross = rng.next() < 1 / 3;
		const payees = users.filter(u => u !== payer && (home(u) !== home(payer)) === cross);
		const payee = rng.pick(payees.length ? payees : users.filter(u => u !== payer));
		// Now and then more than a payer may have: INSUFFICIENT_FUNDS, and nothing written.
		const amount = rng.next() < 0.05 ? rng.between(5_000, 20_000) : rng.between(1, 400);
		return { key: `bank-${session.run}-${++keys}`, payer, payee, amount: String(amount), currency: rng.pick(CURRENCIES), cross, attempts: [] };
	};

	const client = async () => {
		while (!loadOver) {
			const r = rng.next();
			if (r < 0.1 && acknowledged.length) {
				const earlier = rng.pick(acknowledged);
				if (r < 0.06) await send(session, rng, earlier, "replay");
				else {
					// The same key with another amount.
					const reuse: KeyReuse = { key: earlier.key, payer: earlier.payer, attempt: { phase: "replay", entry: "", invokeMs: Date.now() } };
					const body = {
						userId: earlier.payer,
						to: earlier.payee,
						amount: String(Number(earlier.amount) + 1),
						currency: earlier.currency,
						idempotencyKey: earlier.key
					};
					const sent = await callAnywhere(session, rng, "sv-money.transfer", body, TRANSFER_BOUND_MS);
					if (sent) {
						reuse.attempt.entry = sent.node.key;
						settle(reuse.attempt, sent.reply);
						reuses.push(reuse);
					}
				}
				continue;
			}
			const op = newTransfer();
			transfers.push(op);
			// A client sends an unanswered transfer again under its key, after a pause, a few times.
			for (let tries = 0; tries < CLIENT_TRIES && !loadOver && !resolution(op); tries++) {
				await send(session, rng, op, op.attempts.length ? "retry" : "load");
				if (!resolution(op)) await sleep(rng.between(...CLIENT_BACKOFF_MS));
			}
			if (!op.attempts.length) transfers.splice(transfers.indexOf(op), 1);
			if (resolution(op)?.outcome === "ok") acknowledged.push(op);
		}
	};

	const mover = async () => {
		while (await wait(moveRng.between(800, 1500))) {
			if (movesInFlight.size >= 2) continue;
			const userId = moveRng.pick(users);
			const to = moveRng.pick(REGIONS.filter(r => r !== home(userId)));
			const started = callAnywhere(session, moveRng, "sv-region.move", { userId, to }, MOVE_BOUND_MS).then(sent => {
				if (!sent) return;
				moves.total++;
				if (sent.reply.ok) moves.ok++;
				else moves.codes[sent.reply.type] = (moves.codes[sent.reply.type] ?? 0) + 1;
			});
			movesInFlight.add(started);
			void started.finally(() => movesInFlight.delete(started));
		}
	};

	/** SIGKILLs one sv-money node, or now and then both of a region (its credits wait meanwhile), and restarts them. */
	const killer = async () => {
		while (await wait(faultRng.between(2000, 4000))) {
			const region = faultRng.pick(REGIONS);
			const both = faultRng.next() < 0.25;
			const inRegion = session.nodes.filter(n => n.region === region);
			const victims = both ? inRegion : [faultRng.pick(inRegion)];
			kills += victims.length;
			session.log(`nemesis kill: SIGKILL ${victims.map(v => v.key).join(", ")}`);
			await Promise.all(victims.map(v => v.hold()));
			await wait(both ? faultRng.between(3000, 5000) : faultRng.between(500, 1500));
			await Promise.all(victims.map(v => v.release()));
			session.log(`nemesis kill: ${victims.map(v => `${v.key} ${v.state}`).join(", ")}`);
		}
	};

	const natsRestarter = async () => {
		while (await wait(faultRng.between(10_000, 18_000))) {
			natsRestarts++;
			session.log(`nemesis nats-restart: ${NATS_RESTARTED} NATS down`);
			await session.holdNats(NATS_RESTARTED);
			await wait(faultRng.between(2000, 4000));
			await session.releaseNats(NATS_RESTARTED);
			session.log(`nemesis nats-restart: ${NATS_RESTARTED} NATS back`);
		}
	};

	const ledgers = await Ledgers.open(session.run);
	try {
		for (const userId of users.slice(-FROZEN)) await callSurely(session, "sv-money.freeze", { userId, reason: "bank test" }, { idempotent: true });
		session.log(`load: ${opts.clients} clients for ${opts.seconds} s, seed ${opts.seed}; ${FROZEN} wallets frozen`);
		const clients = Array.from({ length: opts.clients }, () => client());
		const faults = (async () => {
			if (!(await wait(opts.warmupSeconds * 1000))) return;
			await Promise.all([killer(), natsRestarter(), mover()]);
		})();
		await sleep(opts.seconds * 1000);
		loadOver = true;
		stopLoad();
		await Promise.all(clients);
		session.log(`load stopped: ${transfers.length} transfers sent; healing`);
		await faults;
		await session.healAll();
		const healedAt = Date.now();
		session.log("healed");
		// What the load left pending settles within the bound, moves still running or not.
		const settledMs = (await untilSettled(ledgers, healedAt + SETTLE_MS, line => session.log(line))) ? Date.now() - healedAt : undefined;
		if (settledMs === undefined) {
			session.log(`NOT settled within ${SETTLE_MS} ms of healing:\n${(await ledgers.unsettledRows(healedAt)).join("\n")}`);
			// Slow or stuck: the evidence says which.
			const late = await untilSettled(ledgers, Date.now() + 2 * SETTLE_MS);
			session.log(late ? `settled ${Date.now() - healedAt} ms after healing` : `still not settled ${Date.now() - healedAt} ms after healing`);
		} else session.log(`settled ${settledMs} ms after healing`);
		await Promise.race([Promise.all([...movesInFlight]), sleep(MOVE_SETTLE_MS)]);
		if (movesInFlight.size) {
			moves.codes[STILL_RUNNING] = movesInFlight.size;
			moves.total += movesInFlight.size;
		}
		const converged = await untilNobodyMoves(session, users);
		session.log(converged === undefined ? "users still moving" : `nobody moving ${converged} ms later`);

		// Unresolved transfers are sent again under their keys until they are answered.
		const open = transfers.filter(op => !resolution(op));
		await inPool(open, opts.clients, async op => {
			for (let i = 0; i < RETRIES && !resolution(op); i++) if (!(await send(session, rng, op, "healed")) || !resolution(op)) await sleep(1000);
		});
		const retried = Date.now();
		const retriesSettledMs = (await untilSettled(ledgers, retried + SETTLE_MS)) ? Date.now() - retried : undefined;
		session.log(`retried ${open.length} unresolved transfers; ${retriesSettledMs === undefined ? "NOT settled" : `settled ${retriesSettledMs} ms later`}`);

		const result = checkBank({
			regions: REGIONS,
			users,
			homes: await homesOf(session, users),
			transfers,
			reuses,
			issued,
			tables: await ledgers.read(),
			reconciliations: await reconcileAll(session)
		});
		const figures = { moves, kills, natsRestarts, settledMs, retriesSettledMs };
		return { ...result, ...figures, seed: opts.seed, line: bankLine(result, figures) };
	} finally {
		loadOver = true;
		stopLoad();
		await ledgers.close();
	}
}

/** The history's counts in the chaos runs' manner. */
export function bankLine(r: BankCheck, extra: Pick<BankResult, "moves" | "kills" | "natsRestarts" | "settledMs" | "retriesSettledMs">): string {
	const c = r.counts;
	const codes = Object.entries(c.codes)
		.sort((a, b) => b[1] - a[1])
		.map(([code, n]) => `${code}×${n}`)
		.join(", ");
	const moveCodes = Object.entries(extra.moves.codes)
		.map(([code, n]) => `${code}×${n}`)
		.join(", ");
	return [
		`transfers ${c.transfers}: first call ok ${c.ok}, refused ${c.refused}, failed ${c.failed}, unknown ${c.unknown}; every failed call by code: ${codes || "none"}`,
		`replays (same key and body) ${c.replays}, answered ${c.replaysOk}; key reused with another body ${c.reuses}, refused IDEMPOTENCY_KEY_REUSED ${c.reusesRefused}`,
		`retried under their key ${c.retried} (after healing ${c.retriedAfterHealing}), found already applied ${c.retriedFoundApplied}; RECIPIENT_NOT_FOUND for a payee that exists ${c.recipientNotFound}`,
		`moves ${extra.moves.ok} ok / ${extra.moves.total}${moveCodes ? ` (${moveCodes})` : ""}; nodes killed ${extra.kills}; NATS restarts ${extra.natsRestarts}`,
		`transfers by status ${JSON.stringify(c.byStatus)}, cross-region ${c.crossRegion}; settled ${extra.settledMs === undefined ? "NOT within the bound" : `${extra.settledMs} ms after healing`}, the retries' ${extra.retriesSettledMs === undefined ? "NOT within the bound" : `${extra.retriesSettledMs} ms after the last`}`,
		`sums ${JSON.stringify(c.sums)}`
	].join("\n");
}
