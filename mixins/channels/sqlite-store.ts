import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { StatementSync } from "node:sqlite";
import { DatabaseSync } from "node:sqlite";
import { immediateTransaction } from "../../regions/stores/sqlite-transaction.ts";
import { ChannelError } from "./errors.ts";
import { assertStoredChannelName } from "./names.ts";
import type { ChannelInfo, ChannelMessage, ChannelStore, ConsumeOptions, Consumption, DeadLetter, Delivery } from "./store.ts";
import { DEAD_LETTER_RETENTION_MS, MAX_DEAD_LETTER_PAGE, RETENTION_MS, replayOf, Slots } from "./store.ts";

/** How often a consumer looks for messages stored by another process, or whose back-off ran out. */
const POLL_MS = 50;
/**
 * Messages a claim looks at past the group's floor (its oldest unfinished message). A key held up
 * by a failing message holds at most this many others behind it before unkeyed ones wait too.
 */
const CLAIM_WINDOW = 2000;
const PRUNE_EVERY_MS = 60_000;

interface ClaimRow {
	seq: number;
	id: string;
	key: string | null;
	grp: string | null;
	payload: string;
	headers: string;
	attempts: number | null;
	not_before: number | null;
	done: number | null;
}

interface DeadLetterRow {
	channel: string;
	grp: string;
	id: string;
	key: string | null;
	payload: string;
	headers: string;
	error: string;
	error_type: string | null;
	attempts: number;
	at: number;
}

/**
 * Channels in embedded mode: one log table for every channel, and per group a floor (below it
 * everything is done) and a delivery row per message it has seen (attempts, lease or back-off
 * end, done). A claim runs in one IMMEDIATE transaction, so processes sharing the file never take
 * the same message, and a crashed process's lease simply runs out.
 */
export class SqliteChannelStore implements ChannelStore {
	readonly kind = "sqlite" as const;
	private readonly db: DatabaseSync;
	private readonly stored = new EventEmitter();
	private readonly known = new Set<string>();
	private readonly stmt: Record<
		| "channel"
		| "declare"
		| "declareGroup"
		| "insert"
		| "floor"
		| "window"
		| "setFloor"
		| "lease"
		| "settle"
		| "delay"
		| "pending"
		| "bury"
		| "deadLetters"
		| "deadLetter"
		| "unbury"
		| "namedWith"
		| "groups",
		StatementSync
	>;
	private readonly pruner: NodeJS.Timeout;
	private closed = false;

	constructor(db: DatabaseSync) {
		this.db = db;
		this.stored.setMaxListeners(0);
		db.exec(`
			CREATE TABLE IF NOT EXISTS channel_names (channel TEXT PRIMARY KEY);
			CREATE TABLE IF NOT EXISTS channel_groups (channel TEXT NOT NULL, grp TEXT NOT NULL, floor INTEGER NOT NULL, PRIMARY KEY (channel, grp));
			CREATE TABLE IF NOT EXISTS channel_messages (
				seq INTEGER PRIMARY KEY AUTOINCREMENT,
				channel TEXT NOT NULL, id TEXT NOT NULL, key TEXT, grp TEXT, payload TEXT NOT NULL, headers TEXT NOT NULL, stored_at INTEGER NOT NULL,
				UNIQUE (channel, id)
			);
			CREATE INDEX IF NOT EXISTS channel_messages_by_channel ON channel_messages (channel, seq);
			CREATE TABLE IF NOT EXISTS channel_deliveries (
				channel TEXT NOT NULL, grp TEXT NOT NULL, seq INTEGER NOT NULL, attempts INTEGER NOT NULL, not_before INTEGER NOT NULL, done INTEGER NOT NULL,
				PRIMARY KEY (channel, grp, seq)
			);
			CREATE TABLE IF NOT EXISTS channel_dead_letters (
				channel TEXT NOT NULL, grp TEXT NOT NULL, id TEXT NOT NULL, key TEXT, payload TEXT NOT NULL, headers TEXT NOT NULL,
				error TEXT NOT NULL, error_type TEXT, attempts INTEGER NOT NULL, at INTEGER NOT NULL,
				PRIMARY KEY (channel, grp, id)
			);
		`);
		this.stmt = {
			channel: db.prepare("SELECT 1 AS ok FROM channel_names WHERE channel = ?"),
			declare: db.prepare("INSERT INTO channel_names (channel) VALUES (?) ON CONFLICT DO NOTHING"),
			declareGroup: db.prepare("INSERT INTO channel_groups (channel, grp, floor) VALUES (?, ?, 0) ON CONFLICT DO NOTHING"),
			insert: db.prepare(
				"INSERT INTO channel_messages (channel, id, key, grp, payload, headers, stored_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
			),
			floor: db.prepare("SELECT floor FROM channel_groups WHERE channel = ? AND grp = ?"),
			window: db.prepare(
				"SELECT m.seq, m.id, m.key, m.grp, m.payload, m.headers, d.attempts, d.not_before, d.done FROM channel_messages m " +
					"LEFT JOIN channel_deliveries d ON d.channel = m.channel AND d.grp = ? AND d.seq = m.seq " +
					"WHERE m.channel = ? AND m.seq >= ? ORDER BY m.seq LIMIT ?"
			),
			setFloor: db.prepare("UPDATE channel_groups SET floor = ? WHERE channel = ? AND grp = ?"),
			lease: db.prepare(
				"INSERT INTO channel_deliveries (channel, grp, seq, attempts, not_before, done) VALUES (?, ?, ?, 1, ?, 0) " +
					"ON CONFLICT DO UPDATE SET attempts = attempts + 1, not_before = excluded.not_before"
			),
			settle: db.prepare("UPDATE channel_deliveries SET done = 1 WHERE channel = ? AND grp = ? AND seq = ?"),
			delay: db.prepare("UPDATE channel_deliveries SET not_before = ? WHERE channel = ? AND grp = ? AND seq = ? AND done = 0"),
			pending: db.prepare(
				"SELECT count(*) AS n FROM channel_messages m WHERE m.channel = ? AND m.seq >= ? AND (m.grp IS NULL OR m.grp = ?) " +
					"AND NOT EXISTS (SELECT 1 FROM channel_deliveries d WHERE d.channel = m.channel AND d.grp = ? AND d.seq = m.seq AND d.done = 1)"
			),
			bury: db.prepare(
				"INSERT INTO channel_dead_letters (channel, grp, id, key, payload, headers, error, error_type, attempts, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) " +
					"ON CONFLICT DO UPDATE SET error = excluded.error, error_type = excluded.error_type, attempts = excluded.attempts, at = excluded.at"
			),
			deadLetters: db.prepare("SELECT * FROM channel_dead_letters WHERE channel = ? ORDER BY at DESC, rowid DESC LIMIT ?"),
			deadLetter: db.prepare("SELECT * FROM channel_dead_letters WHERE channel = ? AND id = ? ORDER BY at DESC LIMIT 1"),
			unbury: db.prepare("DELETE FROM channel_dead_letters WHERE channel = ? AND grp = ? AND id = ?"),
			namedWith: db.prepare("SELECT channel FROM channel_names WHERE substr(channel, 1, length(?)) = ? ORDER BY channel"),
			groups: db.prepare("SELECT n.channel, g.grp FROM channel_names n LEFT JOIN channel_groups g ON g.channel = n.channel ORDER BY n.channel, g.grp")
		};
		this.pruner = setInterval(() => this.prune(), PRUNE_EVERY_MS).unref();
	}

	async declare(channel: string, group?: string): Promise<void> {
		assertStoredChannelName(channel);
		this.stmt.declare.run(channel);
		if (group) this.stmt.declareGroup.run(channel, group);
		this.known.add(channel);
	}

	async publish(message: ChannelMessage): Promise<{ duplicate: boolean }> {
		assertStoredChannelName(message.channel);
		if (!this.known.has(message.channel)) {
			if (!this.stmt.channel.get(message.channel)) throw unknownChannel(message.channel);
			this.known.add(message.channel);
		}
		const { changes } = this.stmt.insert.run(
			message.channel,
			message.id,
			message.key ?? null,
			message.group ?? null,
			message.payload,
			JSON.stringify(message.headers),
			Date.now()
		);
		this.stored.emit(message.channel);
		return { duplicate: changes === 0 };
	}

	async consume(channel: string, group: string, opts: ConsumeOptions, handle: (delivery: Delivery) => Promise<void>): Promise<Consumption> {
		await this.declare(channel, group);
		const slots = new Slots(opts.maxInFlight);
		let running = true;
		let wake: (() => void) | undefined;
		const nudge = () => wake?.();
		this.stored.on(channel, nudge);
		const loop = (async () => {
			while (running && !this.closed) {
				const free = opts.maxInFlight - slots.inUse;
				let claimed: Delivery[] = [];
				try {
					if (free > 0) claimed = this.claim(channel, group, free, opts.ackWaitMs);
				} catch (err) {
					// Another process held the write lock past the busy timeout, or the store is closing: try again next round.
					if (!this.closed) opts.onError?.(err as Error);
				}
				for (const delivery of claimed) {
					await slots.take();
					void handle(delivery).finally(() => {
						slots.release();
						nudge();
					});
				}
				if (claimed.length === 0 || claimed.length === free)
					await new Promise<void>(resolve => {
						const timer = setTimeout(resolve, POLL_MS);
						wake = () => {
							clearTimeout(timer);
							resolve();
						};
					});
			}
		})();
		return {
			stop: async () => {
				running = false;
				nudge();
				this.stored.off(channel, nudge);
				await loop;
				await slots.idle();
			}
		};
	}

	async pending(channel: string, group: string): Promise<number> {
		const floor = (this.stmt.floor.get(channel, group) as { floor: number } | undefined)?.floor ?? 0;
		return (this.stmt.pending.get(channel, floor, group, group) as { n: number }).n;
	}

	async deadLetters(channel: string, limit: number): Promise<DeadLetter[]> {
		const rows = this.stmt.deadLetters.all(channel, Math.min(limit, MAX_DEAD_LETTER_PAGE)) as unknown as DeadLetterRow[];
		return rows.map(deadLetterOf);
	}

	async replay(channel: string, id: string): Promise<ChannelMessage> {
		return immediateTransaction(this.db, () => {
			const row = this.stmt.deadLetter.get(channel, id) as DeadLetterRow | undefined;
			if (!row) throw notFound(channel, id);
			const dead = deadLetterOf(row);
			const message = replayOf(dead, randomUUID());
			this.stmt.insert.run(channel, message.id, message.key ?? null, message.group!, message.payload, JSON.stringify(message.headers), Date.now());
			this.stmt.unbury.run(channel, dead.group, dead.id);
			queueMicrotask(() => this.stored.emit(channel));
			return message;
		});
	}

	async channels(): Promise<ChannelInfo[]> {
		const byChannel = new Map<string, string[]>();
		for (const row of this.stmt.groups.all() as { channel: string; grp: string | null }[]) {
			const groups = byChannel.get(row.channel) ?? [];
			if (row.grp) groups.push(row.grp);
			byChannel.set(row.channel, groups);
		}
		return [...byChannel].map(([channel, groups]) => ({ channel, groups }));
	}

	async declaredWith(prefix: string): Promise<string[]> {
		return (this.stmt.namedWith.all(prefix, prefix) as { channel: string }[]).map(r => r.channel);
	}

	async close(): Promise<void> {
		if (this.closed) return;
		this.closed = true;
		clearInterval(this.pruner);
		this.db.close();
	}

	/** Takes up to `max` deliverable messages: not done, not leased or backing off, and first of their key among the unfinished. */
	private claim(channel: string, group: string, max: number, ackWaitMs: number): Delivery[] {
		const now = Date.now();
		const rows = immediateTransaction(this.db, () => {
			const floor = (this.stmt.floor.get(channel, group) as { floor: number } | undefined)?.floor ?? 0;
			const window = this.stmt.window.all(group, channel, floor, CLAIM_WINDOW) as unknown as ClaimRow[];
			const blocked = new Set<string>();
			const taken: ClaimRow[] = [];
			let firstOpen: number | undefined;
			for (const row of window) {
				if (row.done === 1 || (row.grp !== null && row.grp !== group)) continue;
				firstOpen ??= row.seq;
				if (row.key !== null) {
					if (blocked.has(row.key)) continue;
					blocked.add(row.key);
				}
				if ((row.not_before ?? 0) > now || taken.length >= max) continue;
				this.stmt.lease.run(channel, group, row.seq, now + ackWaitMs);
				taken.push(row);
			}
			const nextFloor = firstOpen ?? (window.length ? window[window.length - 1]!.seq + 1 : floor);
			if (nextFloor !== floor) this.stmt.setFloor.run(nextFloor, channel, group);
			return taken;
		});
		return rows.map(row => this.delivery(channel, group, row, ackWaitMs));
	}

	private delivery(channel: string, group: string, row: ClaimRow, ackWaitMs: number): Delivery {
		const message: ChannelMessage = {
			id: row.id,
			channel,
			payload: row.payload,
			headers: JSON.parse(row.headers) as Record<string, string>,
			...(row.key === null ? {} : { key: row.key }),
			...(row.grp === null ? {} : { group: row.grp })
		};
		const settle = () => {
			if (!this.closed) this.stmt.settle.run(channel, group, row.seq);
		};
		return {
			message,
			attempt: (row.attempts ?? 0) + 1,
			ack: async () => settle(),
			retryIn: async delayMs => {
				if (!this.closed) this.stmt.delay.run(Date.now() + delayMs, channel, group, row.seq);
			},
			keepAlive: async () => {
				if (!this.closed) this.stmt.delay.run(Date.now() + ackWaitMs, channel, group, row.seq);
			},
			deadLetter: async reason => {
				if (this.closed) return;
				immediateTransaction(this.db, () => {
					this.stmt.bury.run(channel, group, row.id, row.key, row.payload, row.headers, reason.error, reason.errorType ?? null, reason.attempts, Date.now());
					settle();
				});
			}
		};
	}

	/** Drops what retention allows: messages past their age, dead letters past theirs, and delivery rows below every floor. */
	private prune(): void {
		if (this.closed) return;
		const now = Date.now();
		this.db.prepare("DELETE FROM channel_messages WHERE stored_at < ?").run(now - RETENTION_MS);
		this.db.prepare("DELETE FROM channel_dead_letters WHERE at < ?").run(now - DEAD_LETTER_RETENTION_MS);
		this.db
			.prepare(
				"DELETE FROM channel_deliveries WHERE seq < (SELECT g.floor FROM channel_groups g WHERE g.channel = channel_deliveries.channel AND g.grp = channel_deliveries.grp)"
			)
			.run();
	}
}

/** `path` is a file (created with its folder if missing) or ":memory:". */
export function openSqliteChannels(path: string): SqliteChannelStore {
	if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
	const db = new DatabaseSync(path);
	db.exec("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA synchronous = FULL;");
	return new SqliteChannelStore(db);
}

export function unknownChannel(channel: string): ChannelError {
	return new ChannelError("UNKNOWN_CHANNEL", `no service declares channel "${channel}" in this region`, { channel });
}

export function notFound(channel: string, id: string): ChannelError {
	return new ChannelError("DEAD_LETTER_NOT_FOUND", `channel "${channel}" has no dead letter "${id}"`, { channel, id });
}

function deadLetterOf(row: DeadLetterRow): DeadLetter {
	return {
		id: row.id,
		channel: row.channel,
		group: row.grp,
		payload: row.payload,
		headers: JSON.parse(row.headers) as Record<string, string>,
		error: row.error,
		attempts: row.attempts,
		at: row.at,
		...(row.key === null ? {} : { key: row.key }),
		...(row.error_type === null ? {} : { errorType: row.error_type })
	};
}
