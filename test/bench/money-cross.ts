import { randomInt } from "node:crypto";
import type { ServiceBroker } from "moleculer";
import type { Connection, RowDataPacket } from "mysql2/promise";
import { within } from "../harness/waiting.ts";
import { count } from "./money-checks.ts";
import { drive, figuresOf, percentile } from "./money-load.ts";

/**
 * bench:money's (d): transfers from users of one region to users of another, first one at a time
 * (the payer's getTransfer asked every `pollMs` until `completed`: what one user waits), then
 * `inFlight` at a time (completion read from the payer home's records afterwards, so no polling
 * loads the run). Every acknowledged transfer must complete.
 */

export interface CrossSettings {
	broker: ServiceBroker;
	payers: string[];
	payees: string[];
	payeeRegion: string;
	currency: string;
	amount: () => number;
	key: () => string;
	/** The payer region's database. */
	home: Connection;
	aloneMs: number;
	loadedMs: number;
	inFlight: number;
	pollMs: number;
	timeoutMs: number;
}

export interface CrossFigures {
	/** Transfer calls answered (`pending`) per second, `inFlight` at a time. */
	acceptedPerSec: number;
	/** Transfers completed per second: all of the window's, over the time from its first call to its last completion. */
	completedPerSec: number;
	ackP50Ms: number;
	ackP99Ms: number;
	/** Call start (this process's clock) to the payer home's `completed_at` (the settle write's clock; same machine). */
	completeP50Ms: number;
	completeP99Ms: number;
	transfers: number;
	errors: Record<string, number>;
	/** One at a time: call start until the payer's getTransfer, asked every `pollMs`, says `completed`. */
	alone: { transfers: number; completeP50Ms: number; completeP99Ms: number; ackP50Ms: number };
}

export async function crossRegion(s: CrossSettings): Promise<CrossFigures> {
	const { broker, payers, payees, payeeRegion, currency, amount, key, home } = s;
	const send = () =>
		broker.call<{ transfer: { id: string; from: string } }, unknown>("sv-money.transfer", {
			userId: payers[randomInt(payers.length)]!,
			to: payees[randomInt(payees.length)]!,
			amount: String(amount()),
			currency,
			idempotencyKey: key()
		});
	// Alone first (it also warms the links, channels and relays up): what one user waits.
	const aloneTimes: number[] = [];
	const aloneAcks: number[] = [];
	const aloneUntil = performance.now() + s.aloneMs;
	while (performance.now() < aloneUntil) {
		const started = performance.now();
		const { transfer } = await send();
		aloneAcks.push(performance.now() - started);
		for (;;) {
			const now = await broker.call<{ status: string }, unknown>("sv-money.getTransfer", { userId: transfer.from, id: transfer.id });
			if (now.status === "completed") break;
			if (now.status !== "pending") throw new Error(`cross-region transfer ${transfer.id} ended ${now.status}`);
			if (performance.now() - started > s.timeoutMs) throw new Error(`cross-region transfer ${transfer.id} still pending after ${s.timeoutMs} ms`);
			await new Promise(r => setTimeout(r, s.pollMs));
		}
		aloneTimes.push(performance.now() - started);
	}
	// Loaded: completion read from the payer home's records afterwards.
	const startedAt = new Map<string, number>();
	const firstCall = Date.now();
	const window = await drive(
		async () => {
			const t0 = Date.now();
			const { transfer } = await send();
			startedAt.set(transfer.id, t0);
		},
		s.loadedMs,
		s.inFlight
	);
	const pendingLeft = () =>
		count(home, "select count(*) as n from money_transfers where kind = 'transfer' and owner_id = from_id and to_region = ? and status = 'pending'", [
			payeeRegion
		]);
	await within(async () => (await pendingLeft()) === 0, s.timeoutMs).catch(async () => {
		throw new Error(`${await pendingLeft()} cross-region transfers still pending ${s.timeoutMs} ms after the run`);
	});
	const [rows] = await home.query<({ id: string; status: string; completed_at: number | string } & RowDataPacket)[]>(
		"select id, status, completed_at from money_transfers where kind = 'transfer' and owner_id = from_id and to_region = ?",
		[payeeRegion]
	);
	const done = new Map(rows.map(r => [r.id, r]));
	const times: number[] = [];
	let last = firstCall;
	for (const [id, t0] of startedAt) {
		const row = done.get(id);
		if (row?.status !== "completed") throw new Error(`cross-region transfer ${id} is ${row?.status ?? "missing"} at the payer's home`);
		const at = Number(row.completed_at);
		times.push(at - t0);
		last = Math.max(last, at);
	}
	times.sort((a, b) => a - b);
	aloneTimes.sort((a, b) => a - b);
	aloneAcks.sort((a, b) => a - b);
	const loaded = figuresOf([window]);
	return {
		acceptedPerSec: loaded.callsPerSec,
		completedPerSec: startedAt.size / ((last - firstCall) / 1000),
		ackP50Ms: loaded.p50Ms,
		ackP99Ms: loaded.p99Ms,
		completeP50Ms: percentile(times, 0.5),
		completeP99Ms: percentile(times, 0.99),
		transfers: startedAt.size,
		errors: loaded.errors,
		alone: {
			transfers: aloneTimes.length,
			completeP50Ms: percentile(aloneTimes, 0.5),
			completeP99Ms: percentile(aloneTimes, 0.99),
			ackP50Ms: percentile(aloneAcks, 0.5)
		}
	};
}
