import type { Kysely } from "kysely";
import { sql } from "kysely";

/** What a fenced write's transaction does around a savepoint a handler opens in it. */
export interface SavepointHooks {
	/** Before the savepoint is opened: a batched write leaves its batch here (savepoints cannot interleave). */
	opening(): void;
	/** After it is released or rolled back. */
	closed(): void;
}

let savepoints = 0;

/**
 * `db` (a transaction) as a service's query builder: `transaction().execute(fn)` inside it runs
 * `fn` in a savepoint, which rolls back alone when `fn` throws.
 */
export function nestable(db: Kysely<any>, hooks?: SavepointHooks): Kysely<any> {
	const facade: Kysely<any> = new Proxy(db, {
		get(target, prop) {
			if (prop === "transaction") return () => savepoint(target, facade, hooks);
			const value = Reflect.get(target, prop, target) as unknown;
			return typeof value === "function" ? value.bind(target) : value;
		}
	});
	return facade;
}

function savepoint(db: Kysely<any>, facade: Kysely<any>, hooks: SavepointHooks | undefined) {
	const builder = {
		setIsolationLevel: () => builder,
		setAccessMode: () => builder,
		async execute<T>(fn: (db: Kysely<any>) => Promise<T>): Promise<T> {
			hooks?.opening();
			try {
				const name = sql.raw(`eh_sp_${++savepoints}`);
				await sql`savepoint ${name}`.execute(db);
				try {
					const result = await fn(facade);
					await sql`release savepoint ${name}`.execute(db);
					return result;
				} catch (err) {
					await sql`rollback to savepoint ${name}`.execute(db).catch(() => undefined);
					throw err;
				}
			} finally {
				hooks?.closed();
			}
		}
	};
	return builder;
}
