import type { Kysely } from "kysely";
import { CompiledQuery } from "kysely";
import type { AuditOutcome } from "../../mixins/audit.mixin.ts";
import { isDuplicateKey } from "../../regions/stores/sql.ts";
import { ChainConflictError } from "./errors.ts";
import type { LogRecord } from "./record.ts";
import type { Append, ChainHead, Checkpoint, LogFilter, LogStore } from "./store.ts";

/** A record as its row holds it: the same fields, snake case, the detail as JSON text. */
type LogRow = Pick<LogRecord, "region" | "seq" | "id" | "at" | "actor" | "action" | "target" | "hash"> & {
	outcome: string;
	request_id: string | null;
	trace_id: string | null;
	ip_hash: string | null;
	detail: string | null;
	logged_at: number;
	prev_hash: string;
};

export interface LogTables {
	audit_log: LogRow;
	audit_checkpoints: Omit<Checkpoint, "seq" | "at"> & { seq: number; at: number };
}

const toRow = (r: LogRecord): LogRow => ({
	region: r.region,
	seq: r.seq,
	id: r.id,
	at: r.at,
	actor: r.actor,
	action: r.action,
	target: r.target,
	outcome: r.outcome,
	request_id: r.requestId,
	trace_id: r.traceId,
	ip_hash: r.ipHash,
	detail: r.detail === null ? null : JSON.stringify(r.detail),
	logged_at: r.loggedAt,
	prev_hash: r.prevHash,
	hash: r.hash
});

const fromRow = (row: LogRow): LogRecord => ({
	region: row.region,
	seq: Number(row.seq),
	id: row.id,
	at: Number(row.at),
	actor: row.actor,
	action: row.action,
	target: row.target,
	outcome: row.outcome as AuditOutcome,
	requestId: row.request_id,
	traceId: row.trace_id,
	ipHash: row.ip_hash,
	detail: row.detail === null ? null : (JSON.parse(row.detail) as Record<string, unknown>),
	loggedAt: Number(row.logged_at),
	prevHash: row.prev_hash,
	hash: row.hash
});

/** The audit chain in the region's SQL store (MariaDB / MySQL or SQLite), tables of migrations.ts. */
export class SqlLogStore implements LogStore {
	private readonly db: Kysely<LogTables>;
	/**
	 * The batch insert as the query builder writes it for this engine: the statement with one row,
	 * and what each further row adds. A batch's statement is then this text and its rows' values,
	 * without a tree of 3 000 nodes built and compiled for each batch of 200 (the chain's hot path).
	 */
	private insert: { first: string; more: string } | undefined;

	constructor(db: Kysely<any>) {
		this.db = db as Kysely<LogTables>;
	}

	/** The tables are the migrations' (run by the service); SQL has no TTL: retention is the sweep's alone. */
	async prepare(): Promise<void> {}

	async head(region: string): Promise<ChainHead | undefined> {
		const last = await this.db.selectFrom("audit_log").select(["seq", "hash"]).where("region", "=", region).orderBy("seq", "desc").limit(1).executeTakeFirst();
		if (last) return { seq: Number(last.seq), hash: last.hash };
		const mark = await this.checkpoint(region);
		return mark ? { seq: mark.seq, hash: mark.hash } : undefined;
	}

	async existing(region: string, ids: readonly string[]): Promise<Set<string>> {
		if (ids.length === 0) return new Set();
		const rows = await this.db.selectFrom("audit_log").select("id").where("region", "=", region).where("id", "in", ids).execute();
		return new Set(rows.map(r => r.id));
	}

	prepareAppend(region: string, records: readonly LogRecord[]): Append {
		if (records.length === 0) return async () => {};
		const rows = records.map(toRow);
		const { first, more } = (this.insert ??= this.batchInsert(rows[0]!));
		// One statement: all rows or none, in either engine. Each row's values in its columns' order, as the builder binds them.
		const statement = CompiledQuery.raw(first + more.repeat(rows.length - 1), rows.flatMap(Object.values));
		return async () => {
			await this.db.executeQuery(statement).catch(err => {
				if (isDuplicateKey(err)) throw new ChainConflictError(region);
				throw err;
			});
		};
	}

	private batchInsert(row: LogRow): { first: string; more: string } {
		const first = this.db.insertInto("audit_log").values(row).compile().sql;
		const two = this.db.insertInto("audit_log").values([row, row]).compile().sql;
		if (!two.startsWith(first)) throw new Error(`the query builder's batch insert does not repeat its row: ${two}`);
		return { first, more: two.slice(first.length) };
	}

	async query(region: string, f: LogFilter, limit: number): Promise<LogRecord[]> {
		let q = this.db.selectFrom("audit_log").selectAll().where("region", "=", region);
		if (f.actor !== undefined) q = q.where("actor", "=", f.actor);
		if (f.target !== undefined) q = q.where("target", "=", f.target);
		if (f.action !== undefined) q = q.where("action", "=", f.action);
		if (f.actions !== undefined) q = q.where("action", "in", f.actions);
		if (f.requestId !== undefined) q = q.where("request_id", "=", f.requestId);
		if (f.from !== undefined) q = q.where("at", ">=", f.from);
		if (f.to !== undefined) q = q.where("at", "<", f.to);
		const user = f.user;
		if (user !== undefined) q = q.where(eb => eb.or([eb("actor", "=", user), eb("target", "=", user)]));
		const p = f.after;
		if (p) {
			if (region < p.region) q = q.where("at", "<=", p.at);
			else if (region > p.region) q = q.where("at", "<", p.at);
			else q = q.where(eb => eb.or([eb("at", "<", p.at), eb.and([eb("at", "=", p.at), eb("seq", "<", p.seq)])]));
		}
		const rows = await q.orderBy("at", "desc").orderBy("seq", "desc").limit(limit).execute();
		return rows.map(fromRow);
	}

	async scan(region: string, afterSeq: number, limit: number): Promise<LogRecord[]> {
		const rows = await this.db
			.selectFrom("audit_log")
			.selectAll()
			.where("region", "=", region)
			.where("seq", ">", afterSeq)
			.orderBy("seq")
			.limit(limit)
			.execute();
		return rows.map(fromRow);
	}

	async checkpoint(region: string): Promise<Checkpoint | undefined> {
		const row = await this.db.selectFrom("audit_checkpoints").selectAll().where("region", "=", region).executeTakeFirst();
		return row ? { ...row, seq: Number(row.seq), at: Number(row.at) } : undefined;
	}

	async saveCheckpoint(c: Checkpoint): Promise<void> {
		const { region, ...rest } = c;
		const updated = await this.db.updateTable("audit_checkpoints").set(rest).where("region", "=", region).executeTakeFirst();
		if (Number(updated.numUpdatedRows) === 0) await this.db.insertInto("audit_checkpoints").values(c).execute();
	}

	async lastBefore(region: string, cutoff: number): Promise<number> {
		const kept = await this.db
			.selectFrom("audit_log")
			.select(eb => eb.fn.min("seq").as("seq"))
			.where("region", "=", region)
			.where("at", ">=", cutoff)
			.executeTakeFirst();
		if (kept?.seq !== null && kept?.seq !== undefined) return Number(kept.seq) - 1;
		return (await this.head(region))?.seq ?? 0;
	}

	async at(region: string, seq: number): Promise<LogRecord | undefined> {
		const row = await this.db.selectFrom("audit_log").selectAll().where("region", "=", region).where("seq", "=", seq).executeTakeFirst();
		return row ? fromRow(row) : undefined;
	}

	async deleteUpTo(region: string, upTo: number, limit: number): Promise<number> {
		// The oldest first, a bounded batch at a time: MySQL's DELETE takes no LIMIT with a subquery on its own table, so the bound is a seq.
		const first = await this.db
			.selectFrom("audit_log")
			.select(eb => eb.fn.min("seq").as("seq"))
			.where("region", "=", region)
			.executeTakeFirst();
		if (first?.seq === null || first?.seq === undefined) return 0;
		const bound = Math.min(upTo, Number(first.seq) + limit - 1);
		const done = await this.db.deleteFrom("audit_log").where("region", "=", region).where("seq", "<=", bound).executeTakeFirst();
		return Number(done.numDeletedRows);
	}

	async close(): Promise<void> {}
}
