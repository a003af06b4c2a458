import type { CompiledQuery, Kysely, LogEvent, QueryResult } from "kysely";
import { Kysely as KyselyBuilder, MysqlDialect } from "kysely";
import type { Pool, PoolConnection } from "mysql2";
import { isDeadlock } from "./lock-errors.ts";
import { unscoped } from "./scoped-db.ts";

/**
 * A transaction that sends its statements in groups, each group one round trip. A set-based batch
 * (sv-money's transfers, sv-notice's sends) costs its round trips more than its statements: each is
 * a turn of a busy event loop and a wake-up of the server's thread, and six statements sent one
 * by one cost six. On MySQL a group is one multi-statement query on a connection of its own pool:
 * `BEGIN` travels with the first group and `COMMIT` with the last (`runAndCommit`, the work's last
 * statements). The server stops a group at its first failing statement, so a failed write never
 * reaches the `COMMIT` behind it and the transaction stays open, as after any failed statement.
 * Elsewhere (SQLite, or inside a write's own transaction) a group is its statements one after
 * another, stopping at the first that fails, and the owner of the transaction commits it.
 */
export interface StatementGroups {
	/** Runs the statements in order; the first that fails stops the rest and rejects with its error. */
	run(queries: readonly CompiledQuery[]): Promise<QueryResult<any>[]>;
	/** As `run`, then commits, in the same round trip where the transaction is this one's: the work's last statements. */
	runAndCommit(queries: readonly CompiledQuery[]): Promise<QueryResult<any>[]>;
}

/** The commit was sent, and whether it applied cannot be told (the connection failed under it). */
export class UncertainCommitError extends Error {
	readonly reason: unknown;

	constructor(reason: unknown) {
		super(`the commit's outcome is unknown: ${(reason as Error)?.message ?? reason}`);
		this.name = "UncertainCommitError";
		this.reason = reason;
	}
}

type Log = (event: LogEvent) => void;

interface GroupPool {
	pool: Pool;
	log: Log;
	/** Each connection's query builder, made the first time it serves, and the transaction it serves now. */
	builders: WeakMap<PoolConnection, { db: Kysely<any>; current?: GroupedConnection }>;
	/**
	 * Connections kept from the pool between transactions: the next takes one at once, so its first
	 * group leaves as it starts, not after the event loop's turn that the pool hands connections on.
	 */
	warm: PoolConnection[];
}

/** Connections a store keeps warm (the batches running at once, for a group commit). */
const WARM_CONNECTIONS = 4;

const groupPools = new WeakMap<Kysely<any>, GroupPool>();

/** Lets `groupedTransaction` on `db` (a MySQL store's query builder) run on `pool`, whose connections allow several statements a query. */
export function enableStatementGroups(db: Kysely<any>, pool: Pool, log: Log): void {
	groupPools.set(db, { pool, log, builders: new WeakMap(), warm: [] });
}

/** Groups run one statement at a time on `db`, a transaction its owner commits. */
export function sequentialGroups(db: Kysely<any>): StatementGroups {
	const run = async (queries: readonly CompiledQuery[]) => {
		const results: QueryResult<any>[] = [];
		for (const query of queries) results.push(await db.executeQuery(query));
		return results;
	};
	return { run, runAndCommit: run };
}

/**
 * Runs `fn` in a transaction of `db`: `trx` for statements one at a time, `groups` for several at
 * once. Commits when `fn` returns unless `runAndCommit` did; rolls back when it throws. A commit
 * whose outcome cannot be known throws UncertainCommitError.
 */
export async function groupedTransaction<T>(db: Kysely<any>, fn: (trx: Kysely<any>, groups: StatementGroups) => Promise<T>): Promise<T> {
	const grouping = groupPools.get(unscoped(db));
	if (!grouping) return statementTransaction(db, fn);
	const conn =
		warmConnection(grouping) ??
		(await new Promise<PoolConnection>((resolve, reject) => grouping.pool.getConnection((err, c) => (err ? reject(err) : resolve(c)))));
	let held = grouping.builders.get(conn);
	if (!held) {
		held = { db: builderOn(() => held!.current!, grouping.log) };
		grouping.builders.set(conn, held);
	}
	const tx = new GroupedConnection(conn, grouping.log);
	held.current = tx;
	try {
		return await tx.transaction(held.db, fn);
	} finally {
		held.current = undefined;
		if (tx.broken) conn.destroy();
		else if (grouping.warm.length < WARM_CONNECTIONS) grouping.warm.push(conn);
		else conn.release();
	}
}

/** A warm connection still open, if any. */
function warmConnection(grouping: GroupPool): PoolConnection | undefined {
	for (let conn = grouping.warm.pop(); conn; conn = grouping.warm.pop()) {
		if (!(conn as { stream?: { destroyed?: boolean } }).stream?.destroyed) return conn;
		conn.destroy();
	}
	return undefined;
}

/**
 * Kysely's own transaction, with groups run one statement at a time: for work that sends its
 * statements one by one anyway, which Kysely's transaction runs with less of this process's work.
 */
export async function statementTransaction<T>(db: Kysely<any>, fn: (trx: Kysely<any>, groups: StatementGroups) => Promise<T>): Promise<T> {
	let returned = false;
	try {
		return await db.transaction().execute(async trx => {
			const value = await fn(trx, sequentialGroups(trx));
			returned = true;
			return value;
		});
	} catch (err) {
		// A deadlock at commit rolled everything back: nothing applied.
		throw returned && !isDeadlock(err) ? new UncertainCommitError(err) : err;
	}
}

/** One transaction on a connection that takes several statements a query. */
class GroupedConnection {
	/** The connection failed or was left in an unknown state: it is not used again. */
	broken = false;
	private begun = false;
	private committed = false;
	private readonly conn: PoolConnection;
	private readonly log: Log;

	constructor(conn: PoolConnection, log: Log) {
		this.conn = conn;
		this.log = log;
	}

	async transaction<T>(trx: Kysely<any>, fn: (trx: Kysely<any>, groups: StatementGroups) => Promise<T>): Promise<T> {
		let value: T;
		try {
			value = await fn(trx, { run: q => this.group(q, false), runAndCommit: q => this.group(q, true) });
		} catch (err) {
			if (this.begun && !this.committed)
				await this.send(["rollback"], []).catch(() => {
					this.broken = true;
				});
			throw err;
		}
		if (this.begun && !this.committed) await this.group([], true);
		return value;
	}

	/** A statement of the transaction's query builder: the first of all opens the transaction. */
	query(text: string, params: unknown[], cb: (err: unknown, result?: unknown) => void): void {
		if (!this.begun) this.conn.query("begin", () => undefined);
		this.begun = true;
		this.conn.query(text, params, (err: unknown, result: unknown) => {
			if ((err as { fatal?: boolean } | null)?.fatal) this.broken = true;
			cb(err, result);
		});
	}

	private async group(queries: readonly CompiledQuery[], commit: boolean): Promise<QueryResult<any>[]> {
		const texts = queries.map(q => q.sql);
		const params = queries.flatMap(q => q.parameters as unknown[]);
		const opening = !this.begun;
		if (opening) texts.unshift("begin");
		if (commit) texts.push("commit");
		this.begun = true;
		const started = Date.now();
		let results: unknown[];
		try {
			results = await this.send(texts, params);
		} catch (err) {
			for (const query of queries) this.log({ level: "error", error: err, query, queryDurationMillis: Date.now() - started });
			if (commit) await this.settleFailedCommit(err);
			throw err;
		}
		if (commit) this.committed = true;
		for (const query of queries) this.log({ level: "query", query, queryDurationMillis: Date.now() - started });
		const mine = results.slice(opening ? 1 : 0, (opening ? 1 : 0) + queries.length);
		return mine.map(queryResult);
	}

	/** After a group ending in COMMIT failed: still open means a statement failed before it; ended, the commit's outcome is unknown. */
	private async settleFailedCommit(err: unknown): Promise<void> {
		if (!(err as { fatal?: boolean }).fatal) {
			const open = await this.send(["select @@in_transaction as open"], []).then(
				r => Number((r[0] as { open: number }[])[0]?.open),
				() => undefined
			);
			// A deadlock rolls the whole transaction back: nothing applied, as when a statement fails.
			if (open === 1 || (open === 0 && isDeadlock(err))) return;
		}
		this.committed = true;
		this.broken = true;
		throw new UncertainCommitError(err);
	}

	/** One query of several statements: each statement's result, in order. */
	private send(texts: string[], params: unknown[]): Promise<unknown[]> {
		return new Promise((resolve, reject) =>
			this.conn.query(texts.join(";\n"), params, (err, result) => {
				if (err) {
					if ((err as { fatal?: boolean }).fatal) this.broken = true;
					reject(err);
				} else resolve(texts.length > 1 ? (result as unknown[]) : [result]);
			})
		);
	}
}

/** Kysely on one held connection, its statements going to the transaction it serves at the time, queued by mysql2. */
function builderOn(current: () => GroupedConnection, log: Log): Kysely<any> {
	const held = { query: (text: string, params: unknown[], cb: (err: unknown, result?: unknown) => void) => current().query(text, params, cb), release() {} };
	const pool = { getConnection: (cb: (err: null, c: typeof held) => void) => cb(null, held), end: (cb: () => void) => cb() };
	return new KyselyBuilder<any>({ dialect: new MysqlDialect({ pool: pool as never }), log });
}

/** A statement's result as Kysely gives it: rows of a query, counts of a write. */
function queryResult(result: unknown): QueryResult<any> {
	if (Array.isArray(result)) return { rows: result };
	const ok = result as { affectedRows?: number; insertId?: number };
	return {
		rows: [],
		numAffectedRows: ok.affectedRows === undefined ? undefined : BigInt(ok.affectedRows),
		insertId: ok.insertId ? BigInt(ok.insertId) : undefined
	};
}
