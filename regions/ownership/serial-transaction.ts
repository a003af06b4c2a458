import type { DatabaseConnection, Dialect, Driver, QueryResult } from "kysely";
import { CompiledQuery, Kysely, MysqlAdapter, MysqlIntrospector, MysqlQueryCompiler, SqliteAdapter, SqliteIntrospector, SqliteQueryCompiler } from "kysely";
import { isDeadlock } from "../stores/lock-errors.ts";
import type { SqlDialectName } from "../stores/sql.ts";

export const BEGIN = CompiledQuery.raw("begin");
export const COMMIT = CompiledQuery.raw("commit");
const ROLLBACK = CompiledQuery.raw("rollback");
const noop = () => undefined;

/**
 * One open transaction on one connection, its statements sent one after the other. After a
 * deadlock none is sent: the database rolled the transaction back, so a later statement would
 * commit on its own, outside the fence.
 */
export class SerialTransaction implements DatabaseConnection {
	rolledBack: unknown;
	private readonly conn: Kysely<any>;
	private tail: Promise<unknown> = Promise.resolve();

	constructor(conn: Kysely<any>) {
		this.conn = conn;
	}

	executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
		const run = this.tail.then(async () => {
			if (this.rolledBack !== undefined) throw this.rolledBack;
			try {
				return await this.conn.executeQuery<R>(query);
			} catch (err) {
				if (isDeadlock(err)) this.rolledBack = err;
				throw err;
			}
		});
		this.tail = run.then(noop, noop);
		return run;
	}

	rollback(): Promise<unknown> {
		const run = this.tail.then(() => this.conn.executeQuery(ROLLBACK));
		this.tail = run.then(noop, noop);
		return run;
	}

	streamQuery(): never {
		throw new Error("streaming queries are not supported inside a fenced write");
	}
}

const dialects = {
	mysql: { adapter: new MysqlAdapter(), compiler: new MysqlQueryCompiler(), introspector: (db: Kysely<any>) => new MysqlIntrospector(db) },
	sqlite: { adapter: new SqliteAdapter(), compiler: new SqliteQueryCompiler(), introspector: (db: Kysely<any>) => new SqliteIntrospector(db) }
};

/** A query builder whose every statement goes to `connection`. It opens no transaction of its own. */
export function queryBuilderOver(connection: DatabaseConnection, dialect: SqlDialectName): Kysely<any> {
	const refuse = () => Promise.reject(new Error("a fenced write's transaction is opened by the fence; use this.db.transaction() for a savepoint"));
	const driver: Driver = {
		init: async () => undefined,
		acquireConnection: async () => connection,
		releaseConnection: async () => undefined,
		beginTransaction: refuse,
		commitTransaction: refuse,
		rollbackTransaction: refuse,
		destroy: async () => undefined
	};
	const { adapter, compiler, introspector } = dialects[dialect];
	const over: Dialect = { createAdapter: () => adapter, createDriver: () => driver, createQueryCompiler: () => compiler, createIntrospector: introspector };
	return new Kysely<any>({ dialect: over });
}
