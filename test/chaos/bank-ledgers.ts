import { setTimeout as sleep } from "node:timers/promises";
import type { Connection, RowDataPacket } from "mysql2/promise";
import { createConnection } from "mysql2/promise";
import { realStores } from "../harness/real-servers.ts";
import type { MoneyTables } from "./bank-checker.ts";
import { REGIONS } from "./session.ts";

/** Every region's sv-money tables, read from its MariaDB database past the services. */
export class Ledgers {
	private readonly dbs: Record<string, Connection>;

	private constructor(dbs: Record<string, Connection>) {
		this.dbs = dbs;
	}

	static async open(run: string): Promise<Ledgers> {
		const dbs: Record<string, Connection> = {};
		for (const region of REGIONS) dbs[region] = await createConnection({ uri: realStores(run, region).sql });
		return new Ledgers(dbs);
	}

	async close(): Promise<void> {
		await Promise.allSettled(Object.values(this.dbs).map(db => db.end()));
	}

	private async rows<T>(region: string, sql: string, args: unknown[] = []): Promise<T[]> {
		const [rows] = await this.dbs[region]!.query<RowDataPacket[]>(sql, args);
		return rows as T[];
	}

	async read(): Promise<Record<string, MoneyTables>> {
		const out: Record<string, MoneyTables> = {};
		for (const region of REGIONS) {
			const [outbox] = await this.rows<{ n: number }>(region, "select count(*) as n from money_outbox");
			out[region] = {
				accounts: await this.rows(region, "select owner_id, currency, kind, cast(balance as char) as balance, cast(held as char) as held from money_accounts"),
				transfers: await this.rows(
					region,
					`select owner_id, id, kind, from_id, to_id, from_region, to_region, cast(amount as char) as amount, currency, status, reason, idempotency_key
					from money_transfers`
				),
				entries: (
					await this.rows<{ transfer_id: string; account_owner: string; kind: string; currency: string; n: number | string; total: string }>(
						region,
						`select transfer_id, account_owner, kind, currency, count(*) as n, cast(sum(amount) as char) as total
						from money_entries group by transfer_id, account_owner, kind, currency`
					)
				).map(e => ({ ...e, n: Number(e.n) })),
				outbox: Number(outbox?.n ?? 0)
			};
		}
		return out;
	}

	/** Transfers still pending (payers' copies) and messages still in an outbox, over every region. */
	async unsettled(): Promise<{ pending: number; outbox: number }> {
		let pending = 0;
		let outbox = 0;
		for (const region of REGIONS) {
			const [p] = await this.rows<{ n: number }>(region, "select count(*) as n from money_transfers where status = 'pending'");
			const [o] = await this.rows<{ n: number }>(region, "select count(*) as n from money_outbox");
			pending += Number(p?.n ?? 0);
			outbox += Number(o?.n ?? 0);
		}
		return { pending, outbox };
	}

	/** What is still unsettled, for evidence: pending transfers and outbox messages, with their ages relative to `since`. */
	async unsettledRows(since: number): Promise<string[]> {
		const out: string[] = [];
		for (const region of REGIONS) {
			for (const t of await this.rows<{ id: string; from_id: string; to_id: string; to_region: string; created_at: number }>(
				region,
				"select id, from_id, to_id, to_region, cast(created_at as char) as created_at from money_transfers where status = 'pending'"
			))
				out.push(`${region}: pending ${t.id} ${t.from_id} → ${t.to_id}@${t.to_region}, created ${Number(t.created_at) - since} ms after healing`);
			for (const m of await this.rows<{ id: number; channel: string; region: string; msg_key: string; created_at: number; claimed_until: number }>(
				region,
				"select id, channel, region, msg_key, cast(created_at as char) as created_at, cast(claimed_until as char) as claimed_until from money_outbox"
			))
				out.push(
					`${region}: outbox ${m.id} ${m.channel} for ${m.msg_key}@${m.region}, written ${Number(m.created_at) - since} ms after healing, claimed until ${Number(m.claimed_until) - since}`
				);
		}
		return out;
	}

	/** A user's holds in every region, as `<id> <status>`, sorted. */
	async holdsOf(owner: string): Promise<Record<string, string[]>> {
		const out: Record<string, string[]> = {};
		for (const region of REGIONS)
			out[region] = (await this.rows<{ id: string; status: string }>(region, "select id, status from money_holds where owner_id = ?", [owner]))
				.map(h => `${h.id} ${h.status}`)
				.sort();
		return out;
	}

	/** Where a transfer's copies are: each region's rows of that id, by owner, sorted by region. */
	async transferCopies(id: string): Promise<{ region: string; owner: string; status: string }[]> {
		const out: { region: string; owner: string; status: string }[] = [];
		for (const region of REGIONS)
			for (const r of await this.rows<{ owner_id: string; status: string }>(region, "select owner_id, status from money_transfers where id = ?", [id]))
				out.push({ region, owner: r.owner_id, status: r.status });
		return out.sort((a, b) => a.region.localeCompare(b.region));
	}
}

/** Waits (bounded by `deadline`) until no transfer is pending and every outbox is empty; true if so. `progress` hears the counts every 5 s. */
export async function untilSettled(ledgers: Ledgers, deadline: number, progress?: (line: string) => void): Promise<boolean> {
	for (let told = 0; ; await sleep(250)) {
		const { pending, outbox } = await ledgers.unsettled();
		if (pending === 0 && outbox === 0) return true;
		if (Date.now() > deadline) return false;
		if (progress && Date.now() - told >= 5000) {
			told = Date.now();
			progress(`unsettled: ${pending} transfer(s) pending, ${outbox} outbox message(s)`);
		}
	}
}
