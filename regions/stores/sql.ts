import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { Kysely, MysqlDialect, sql } from "kysely";
import { createConnection, createPool } from "mysql2";
import { sqlQuerySpans } from "../runtime/tracing/sql-spans.ts";
import { enableStatementGroups } from "./grouped-transaction.ts";
import { scopedDb } from "./scoped-db.ts";
import { nodeSqliteDialect } from "./sqlite-dialect.ts";

export type SqlDialectName = "mysql" | "sqlite";

/** A unique key met, in either engine's words: a concurrent write got there first. */
export function isDuplicateKey(err: unknown): boolean {
	const e = err as { code?: string; errno?: number; message?: string };
	return e?.code === "ER_DUP_ENTRY" || e?.errno === 1062 || /UNIQUE constraint failed/.test(e?.message ?? "");
}

/** A region's relational store: one query builder, whichever engine is behind it. */
export interface SqlStore {
	readonly dialect: SqlDialectName;
	/** Where it points, without credentials, for logs and the banner. */
	readonly location: string;
	readonly db: Kysely<any>;
	ping(): Promise<void>;
	close(): Promise<void>;
}

/**
 * Opens `mysql://user:pass@host:port/database`, `sqlite:<file>` or `sqlite::memory:`.
 * A MySQL database that does not exist yet is created, so a fresh server needs no manual step.
 */
export async function openSqlStore(url: string, opts: { poolSize?: number } = {}): Promise<SqlStore> {
	if (url.startsWith("sqlite:")) {
		const path = url.slice("sqlite:".length);
		if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
		const db = new Kysely<any>({ dialect: nodeSqliteDialect(path), log: sqlQuerySpans("sqlite") });
		return store("sqlite", url, db);
	}
	if (url.startsWith("mysql:")) {
		const parsed = new URL(url);
		const database = decodeURIComponent(parsed.pathname.slice(1));
		if (!/^[A-Za-z0-9_]{1,64}$/.test(database)) throw new Error(`MySQL URL must name a database of [A-Za-z0-9_] (got "${database}")`);
		await ensureDatabase(parsed, database);
		const poolOf = (multipleStatements: boolean) => {
			const pool = createPool({
				uri: url,
				connectionLimit: opts.poolSize ?? 10,
				connectTimeout: 5000,
				supportBigNumbers: true,
				bigNumberStrings: false,
				multipleStatements
			});
			// Statements see what others committed, and locking reads take no gap locks: fenced writes hold
			// their transaction across a handler, and a repeatable-read snapshot would hide concurrent commits from it.
			pool.on("connection", conn => conn.query("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"));
			return pool;
		};
		const log = sqlQuerySpans("mysql", database);
		const db = new Kysely<any>({ dialect: new MysqlDialect({ pool: poolOf(false) }), log });
		// Only grouped transactions, whose statements are all compiled with bound parameters, may send several in one query.
		const groups = poolOf(true);
		enableStatementGroups(db, groups, log);
		parsed.password = "";
		parsed.username = "";
		return store("mysql", parsed.toString(), db, () => new Promise<void>(resolve => groups.end(() => resolve())));
	}
	throw new Error(`unsupported SQL store URL "${url}" (use mysql://… or sqlite:…)`);
}

function store(dialect: SqlDialectName, location: string, raw: Kysely<any>, closeMore?: () => Promise<void>): SqlStore {
	const db = scopedDb(raw);
	return {
		dialect,
		location,
		db,
		async ping() {
			await sql`select 1`.execute(db);
		},
		async close() {
			await db.destroy();
			await closeMore?.();
		}
	};
}

async function ensureDatabase(url: URL, database: string): Promise<void> {
	const server = new URL(url);
	server.pathname = "/";
	const conn = createConnection({ uri: server.toString(), connectTimeout: 5000 }).promise();
	try {
		await conn.query(`CREATE DATABASE IF NOT EXISTS \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
	} finally {
		await conn.end().catch(() => undefined);
	}
}

/** Drops a MySQL database: for test harnesses that made a per-run one. */
export async function dropMysqlDatabase(url: string): Promise<void> {
	const parsed = new URL(url);
	const database = decodeURIComponent(parsed.pathname.slice(1));
	parsed.pathname = "/";
	const conn = createConnection({ uri: parsed.toString() }).promise();
	try {
		await conn.query(`DROP DATABASE IF EXISTS \`${database}\``);
	} finally {
		await conn.end().catch(() => undefined);
	}
}
