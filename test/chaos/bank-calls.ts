import { setTimeout as sleep } from "node:timers/promises";
import { within } from "../harness/waiting.ts";
import type { Attempt, TransferOp } from "./bank-checker.ts";
import { outcomeOf } from "./bank-codes.ts";
import type { Rng } from "./nemeses.ts";
import { seeded } from "./nemeses.ts";
import type { NodeProcess, Reply, Session } from "./session.ts";
import { COUNTRY, REGIONS } from "./session.ts";

/** The bank tests' calls on the chaos session's nodes: transfers as clients send them, and the harness's own set-up and reads. */

export const CURRENCIES = ["EUR", "JPY"];
/** A transfer's answer: past the product's 10 s call timeout. */
export const TRANSFER_BOUND_MS = 30_000;
/** Users must stop moving this long after healing (the recovery sweep ends an orphaned move within seconds). */
const CONVERGE_MS = 60_000;

/** A call on a random running node; undefined when none runs, or the picked one went down before it was sent. */
export async function callAnywhere(
	session: Session,
	rng: Rng,
	action: string,
	params: unknown,
	boundMs: number
): Promise<{ node: NodeProcess; reply: Reply } | undefined> {
	const nodes = session.up();
	if (!nodes.length) return undefined;
	const node = rng.pick(nodes);
	const reply = await node.call(action, params, boundMs);
	if (!reply.ok && reply.type === "NOT_RUNNING") return undefined;
	return { node, reply };
}

/**
 * The harness's own calls (set-up, reads): sent again after a refusal that sent nothing, and, when
 * `idempotent` (a read, a freeze), after an unknown outcome too; bounded.
 */
export async function callSurely<T = any>(session: Session, action: string, params: unknown, opts: { idempotent?: boolean; what?: string } = {}): Promise<T> {
	const rng = seeded(Date.now());
	let last = "no node running";
	for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(500)) {
		const sent = await callAnywhere(session, rng, action, params, TRANSFER_BOUND_MS);
		if (!sent) continue;
		if (sent.reply.ok) return sent.reply.res as T;
		last = `${sent.reply.type} ${sent.reply.message ?? ""}`;
		const outcome = outcomeOf(sent.reply);
		if (outcome === "refused" || (outcome === "unknown" && !opts.idempotent)) break;
	}
	throw new Error(`${opts.what ?? action}: ${last}`);
}

/** Issues `amount` of each currency to every user (operator: the first user); answers what was issued per currency. */
export async function seedUsers(session: Session, users: string[], amount: bigint, operator: string): Promise<Record<string, bigint>> {
	const issued: Record<string, bigint> = {};
	await Promise.all(
		users.flatMap(userId =>
			CURRENCIES.map(async currency => {
				await callSurely(
					session,
					"sv-money.adjust",
					{ userId, amount: amount.toString(), currency, reason: "bank test seed", operator },
					{ what: `seed ${userId}` }
				);
				issued[currency] = (issued[currency] ?? 0n) + amount;
			})
		)
	);
	return issued;
}

/** Registers one user homed in `region`, and waits until every running node can look it up. */
export async function registerUser(session: Session, region: string, name: string): Promise<string> {
	const reply = await session
		.node(region, "aux")
		.call("sv-region.register", { identities: [{ kind: "username", value: `${name}-${session.run}` }], country: COUNTRY[region] }, 15_000);
	if (!reply.ok) throw new Error(`register ${name}: ${reply.type} ${reply.message ?? ""}`);
	const userId = (reply.res as { userId: string }).userId;
	await untilEveryNodeSees(session, [userId]);
	return userId;
}

/**
 * Waits until every running node can look each user up: mirrors trail the origin, by up to ~50 s
 * after their region's NATS server restarted (the mirror watchdog's stall bound, then a remake and refill).
 */
export async function untilEveryNodeSees(session: Session, users: string[]): Promise<void> {
	for (const node of session.up())
		for (const userId of users)
			await within(async () => (await node.call("sv-region.lookup", { userId }, 5000)).ok, 60_000).catch(() => {
				throw new Error(`${node.key} never saw user ${userId}`);
			});
}

/** `sv-money.reconcile` of every region. */
export async function reconcileAll(session: Session): Promise<Record<string, { ok: boolean } | string>> {
	const out: Record<string, { ok: boolean } | string> = {};
	for (const region of REGIONS)
		out[region] = await callSurely<{ ok: boolean }>(session, "sv-money.reconcile", { region }, { idempotent: true }).catch(err => (err as Error).message);
	return out;
}

/** Each user's home as the directory's origin says it. */
export async function homesOf(session: Session, users: string[]): Promise<Record<string, string | undefined>> {
	return Object.fromEntries(await Promise.all(users.map(async u => [u, (await session.originEntry(u))?.region] as const)));
}

/** Waits (bounded) until no user is moving and no move journal is open, read on the origin; the ms it took, undefined if it did not happen. */
export async function untilNobodyMoves(session: Session, users: string[], ms = CONVERGE_MS): Promise<number | undefined> {
	const started = Date.now();
	for (;;) {
		try {
			const moving = await Promise.all(
				users.map(async u => (await session.originEntry(u))?.state === "moving" || (await session.originJournal(u)) !== undefined)
			);
			if (!moving.some(Boolean)) return Date.now() - started;
		} catch (err) {
			session.log(`origin read failed: ${(err as Error).message}`);
		}
		if (Date.now() - started > ms) return undefined;
		await sleep(500);
	}
}

/** Sends one call of `op` (through `node`, else a random running one); the attempt is in its history from the moment it is sent. */
export async function send(session: Session, rng: Rng, op: TransferOp, phase: Attempt["phase"], through?: NodeProcess): Promise<Attempt | undefined> {
	const params = { userId: op.payer, to: op.payee, amount: op.amount, currency: op.currency, idempotencyKey: op.key };
	const nodes = session.up();
	if (!nodes.length) return undefined;
	const node = through ?? rng.pick(nodes);
	const attempt: Attempt = { phase, entry: node.key, invokeMs: Date.now() };
	op.attempts.push(attempt);
	const reply = await node.call("sv-money.transfer", params, TRANSFER_BOUND_MS);
	if (!reply.ok && reply.type === "NOT_RUNNING") {
		op.attempts.splice(op.attempts.indexOf(attempt), 1);
		return undefined;
	}
	settle(attempt, reply);
	return attempt;
}

/** What a reply says of the attempt. */
export function settle(attempt: Attempt, reply: Reply): void {
	attempt.completeMs = Date.now();
	attempt.outcome = outcomeOf(reply);
	if (reply.ok) {
		const res = reply.res as { transfer: { id: string }; replayed: boolean };
		attempt.transferId = res.transfer.id;
		attempt.replayed = res.replayed;
		return;
	}
	attempt.code = reply.type;
	attempt.message = reply.message;
}
