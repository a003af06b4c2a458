import { DatabaseSync } from "node:sqlite";
import type { SqliteDatabase, SqliteStatement } from "kysely";
import { SqliteDialect } from "kysely";

/**
 * Kysely's SQLite dialect over Node's built-in `node:sqlite`, so the embedded
 * mode needs no native build. Kysely asks only for prepare/all/run/iterate.
 */
function wrap(db: DatabaseSync): SqliteDatabase {
	return {
		close: () => db.close(),
		prepare(sql: string): SqliteStatement {
			const stmt = db.prepare(sql);
			return {
				reader: stmt.columns().length > 0,
				all: params => stmt.all(...(params as never[])),
				run: params => stmt.run(...(params as never[])),
				iterate: params => stmt.iterate(...(params as never[])) as IterableIterator<unknown>
			};
		}
	};
}

/** `path` is a file, or ":memory:" for a store that lives as long as the process. */
export function nodeSqliteDialect(path: string): SqliteDialect {
	return new SqliteDialect({
		database: async () => {
			const db = new DatabaseSync(path);
			// WAL lets readers proceed during a write; the busy timeout absorbs short lock waits.
			db.exec("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;");
			return wrap(db);
		}
	});
}
