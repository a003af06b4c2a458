import type { Kysely } from "kysely";
import { sql } from "kysely";
import type { ServiceBroker } from "moleculer";
import { METRIC } from "../../regions/runtime/metric-names.ts";
import type { SqlDialectName } from "../../regions/stores/sql.ts";

/**
 * The transactional outbox of a service's SQL store: messages written in the same transaction as
 * the change that calls for them, so they exist exactly when it committed. The relay hands
 * committed rows on (to the durable channels, usually), then deletes them. Every node of the
 * service runs one; a row is claimed for `CLAIM_MS` first (MySQL: rows another relay is claiming
 * are skipped), so relays rarely send the same row twice, and when they do (a relay killed between
 * sending and deleting, a move copying a row just sent) the receiving side must find the repeat
 * harmless. Sending needs only this region: the channels store a message for another region here
 * first.
 *
 * The table: `id` (auto-increment), `channel`, `msg_key`, `region`, `payload` (JSON),
 * `claimed_until` (ms, 0 when unclaimed), `created_at` (ms; read only for the metrics), and
 * whatever else the service keeps (its owner).
 */

/** A row as a service writes it (the relay fills `claimed_until`); `owner_id` is the user whose move takes it along. */
export interface OutboxRow {
	owner_id: string;
	channel: string;
	msg_key: string;
	region: string;
	payload: string;
	created_at: number;
}

export interface RelayedMessage {
	channel: string;
	key: string;
	region: string;
	payload: unknown;
}

export interface OutboxRelayOptions {
	/** The region database past any fenced transaction. */
	db: Kysely<any>;
	/** The outbox table. */
	table: string;
	dialect: SqlDialectName;
	send(message: RelayedMessage): Promise<void>;
	logger: ServiceBroker["logger"];
	/** How often the outbox is read when nothing kicked the relay. */
	pollMs: number;
	/** Gets the age of the oldest waiting message at each round (edgehome_outbox_oldest_age_seconds, by table), when its metrics are on. */
	broker?: ServiceBroker;
}

/** Rows sent per round. */
const BATCH = 64;
/** A claimed row another relay may take over after this long (its relay died mid-round). */
const CLAIM_MS = 30_000;
/** A row whose send failed is tried again after this long. */
const RETRY_MS = 1000;
/** A kick waits this long first, so the write that kicked has committed (the fence's batch hold). */
const KICK_DELAY_MS = 25;

interface Claimed {
	id: number | string;
	channel: string;
	msg_key: string;
	region: string;
	payload: string;
}

export class OutboxRelay {
	private readonly opts: OutboxRelayOptions;
	private timer: NodeJS.Timeout | undefined;
	private running: Promise<void> | undefined;
	private again = false;
	/** When the next round is due. */
	private dueAt = Number.POSITIVE_INFINITY;
	private stopped = true;
	/** Messages sent, rounds that failed: for tests and the metrics. */
	readonly stats = { sent: 0, failed: 0 };

	constructor(opts: OutboxRelayOptions) {
		this.opts = opts;
	}

	start(): void {
		this.stopped = false;
		this.schedule(this.opts.pollMs);
	}

	async stop(): Promise<void> {
		this.stopped = true;
		clearTimeout(this.timer);
		await this.running;
	}

	/**
	 * A write just put a message in the outbox: send it soon rather than at the next poll. A round
	 * due sooner stays as it is: kicks arriving faster than the delay must not keep pushing it back.
	 */
	kick(): void {
		if (this.stopped) return;
		if (this.running) this.again = true;
		else if (this.dueAt > Date.now() + KICK_DELAY_MS) this.schedule(KICK_DELAY_MS);
	}

	private schedule(ms: number): void {
		clearTimeout(this.timer);
		this.dueAt = Date.now() + ms;
		this.timer = setTimeout(() => {
			this.running = this.round().finally(() => {
				this.running = undefined;
				if (this.stopped) return;
				const more = this.again;
				this.again = false;
				this.schedule(more ? 0 : this.opts.pollMs);
			});
		}, ms);
	}

	private async round(): Promise<void> {
		try {
			await this.measureAge();
			for (;;) {
				const claimed = await this.claim();
				if (!claimed.length) return;
				const outcomes = await Promise.allSettled(
					claimed.map(row => this.opts.send({ channel: row.channel, key: row.msg_key, region: row.region, payload: JSON.parse(row.payload) }))
				);
				const sent = claimed.filter((_, i) => outcomes[i]!.status === "fulfilled").map(r => r.id);
				const failed = claimed.filter((_, i) => outcomes[i]!.status === "rejected").map(r => r.id);
				if (sent.length) await this.opts.db.deleteFrom(this.opts.table).where("id", "in", sent).execute();
				if (failed.length) {
					this.stats.failed += failed.length;
					await this.opts.db
						.updateTable(this.opts.table)
						.set({ claimed_until: Date.now() + RETRY_MS })
						.where("id", "in", failed)
						.execute();
					const reason = outcomes.find(o => o.status === "rejected") as PromiseRejectedResult;
					this.opts.logger.warn(`outbox: ${failed.length} message(s) not sent yet: ${(reason.reason as Error).message}`);
					return;
				}
				this.stats.sent += sent.length;
				if (claimed.length < BATCH) return;
			}
		} catch (err) {
			this.opts.logger.warn(`outbox: cannot read or update the outbox: ${(err as Error).message}`);
		}
	}

	/** Every waiting row counts, claimed or not: one whose sends keep failing is the lag an operator must see. */
	private async measureAge(): Promise<void> {
		const broker = this.opts.broker;
		if (!broker?.isMetricsEnabled()) return;
		const oldest = await this.opts.db.selectFrom(this.opts.table).select("created_at").orderBy("id").limit(1).executeTakeFirst();
		const ageMs = oldest ? Math.max(0, Date.now() - Number(oldest.created_at)) : 0;
		broker.metrics.set(METRIC.outboxOldestAge, ageMs / 1000, { outbox: this.opts.table });
	}

	/** Up to BATCH unclaimed rows, oldest first, claimed for this relay. */
	private claim(): Promise<Claimed[]> {
		const now = Date.now();
		return this.opts.db.transaction().execute(async trx => {
			const rows =
				await sql<Claimed>`select id, channel, msg_key, region, payload from ${sql.table(this.opts.table)} where claimed_until < ${now} order by id limit ${BATCH}
				${sql.raw(this.opts.dialect === "mysql" ? "for update skip locked" : "")}`.execute(trx);
			if (rows.rows.length)
				await trx
					.updateTable(this.opts.table)
					.set({ claimed_until: now + CLAIM_MS })
					.where(
						"id",
						"in",
						rows.rows.map(r => r.id)
					)
					.execute();
			return rows.rows;
		});
	}
}
