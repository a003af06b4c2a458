import { AsyncLocalStorage } from "node:async_hooks";
import type { Kysely } from "kysely";

/**
 * Which transaction a region database's queries belong to in the current async context. A
 * fenced write (regions/ownership/fence.ts) opens one, and every query made while it runs (by
 * the handler, by a helper that kept the database handle since start-up, by a call it makes on
 * this node) joins it: it commits or rolls back with the write, and on SQLite, whose one
 * connection the transaction holds, a query outside it would wait for it forever.
 */
export interface DbScope {
	/** The transaction, as the query builder services get. */
	db: Kysely<any>;
	/** Users whose ownership this transaction has checked, with the epoch it found. */
	fenced: Map<string, number>;
}

/** A scope as the context holds it: it ends when the work it was opened for settles. */
interface LiveScope extends DbScope {
	ended: boolean;
}

const scopes = new AsyncLocalStorage<Map<Kysely<any>, LiveScope>>();
const raws = new WeakMap<object, Kysely<any>>();

/** `raw` as services hold it: each query goes to the transaction open on it in this context, if any. */
export function scopedDb<DB>(raw: Kysely<DB>): Kysely<DB> {
	const proxy = new Proxy(raw, {
		get(target, prop) {
			const real = (live(scopes.getStore()?.get(target))?.db as Kysely<DB> | undefined) ?? target;
			const value = Reflect.get(real, prop, real) as unknown;
			return typeof value === "function" ? value.bind(real) : value;
		}
	});
	raws.set(proxy, raw);
	return proxy;
}

/** The transaction open on `db` in this context. */
export function scopeOf(db: Kysely<any>): DbScope | undefined {
	return live(scopes.getStore()?.get(raws.get(db) ?? db));
}

function live(scope: LiveScope | undefined): LiveScope | undefined {
	return scope?.ended ? undefined : scope;
}

/**
 * Runs `fn` with `scope` as the transaction of `db`, until `fn` settles. Work `fn` leaves behind
 * (a timer, an event handled later) inherits this async context but not the transaction: it may
 * run after the transaction ended, so its queries go to the database and its writes are fenced anew.
 */
export function runInScope<T>(db: Kysely<any>, scope: DbScope, fn: () => Promise<T>): Promise<T> {
	const entry: LiveScope = { ...scope, ended: false };
	const end = () => {
		entry.ended = true;
	};
	let running: Promise<T>;
	try {
		running = scopes.run(new Map(scopes.getStore()).set(raws.get(db) ?? db, entry), fn);
	} catch (err) {
		end();
		throw err;
	}
	void running.then(end, end);
	return running;
}

/** The database itself, past any open transaction: for what must not join one (a handover's own transaction). */
export function unscoped<DB>(db: Kysely<DB>): Kysely<DB> {
	return (raws.get(db) as Kysely<DB> | undefined) ?? db;
}
