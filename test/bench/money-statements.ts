import mysql2 from "mysql2";

/**
 * For bench:money's profile: every statement this process sends to MariaDB, counted and timed by
 * kind (verb and table, e.g. `update money_accounts`), with the deadlocks and lock wait timeouts
 * among them. It wraps mysql2's `Connection.query`, which Kysely's MySQL driver calls for each
 * statement, so the region store's pool is counted as it runs, with no change to the store.
 */

export interface StatementKind {
	count: number;
	/** Sum of send-to-answer times: what a lane waits per statement, lock waits included. */
	ms: number;
}

export interface StatementCounts {
	kinds: Record<string, StatementKind>;
	deadlocks: number;
	lockWaitTimeouts: number;
}

const ER_LOCK_WAIT_TIMEOUT = 1205;
const ER_LOCK_DEADLOCK = 1213;

const counts: StatementCounts = { kinds: {}, deadlocks: 0, lockWaitTimeouts: 0 };

/** `select … from edgehome_ownership … lock in share mode` → `select edgehome_ownership (share)`. */
export function statementKind(sql: string): string {
	const text = sql.trim().toLowerCase();
	const verb = /^\w+/.exec(text)?.[0] ?? "?";
	const table = /\b(?:from|into|update|table)\s+`?(\w+)/.exec(text)?.[1];
	const lock = /lock in share mode$/.test(text) ? " (share)" : /for update( skip locked)?$/.test(text) ? " (for update)" : "";
	return table ? `${verb} ${table}${lock}` : verb;
}

let installed = false;

/** Starts counting (once per process). */
export function countStatements(): void {
	if (installed) return;
	installed = true;
	const proto = mysql2.Connection.prototype as unknown as { query: (...args: unknown[]) => unknown };
	const query = proto.query;
	proto.query = function (this: unknown, ...args: unknown[]) {
		const last = args.length - 1;
		const sql = typeof args[0] === "string" ? args[0] : (args[0] as { sql?: string } | undefined)?.sql;
		if (typeof sql !== "string" || typeof args[last] !== "function") return query.apply(this, args);
		const kind = (counts.kinds[statementKind(sql)] ??= { count: 0, ms: 0 });
		const started = performance.now();
		const cb = args[last] as (err: { errno?: number } | null, ...rest: unknown[]) => void;
		args[last] = (err: { errno?: number } | null, ...rest: unknown[]) => {
			kind.count++;
			kind.ms += performance.now() - started;
			if (err?.errno === ER_LOCK_DEADLOCK) counts.deadlocks++;
			if (err?.errno === ER_LOCK_WAIT_TIMEOUT) counts.lockWaitTimeouts++;
			cb(err, ...rest);
		};
		return query.apply(this, args);
	};
}

/** A copy of the counts so far. */
export function statementCounts(): StatementCounts {
	return structuredClone(counts);
}

/** What happened between two snapshots. */
export function countsSince(before: StatementCounts, after: StatementCounts): StatementCounts {
	const kinds: Record<string, StatementKind> = {};
	for (const [name, k] of Object.entries(after.kinds)) {
		const was = before.kinds[name] ?? { count: 0, ms: 0 };
		if (k.count > was.count) kinds[name] = { count: k.count - was.count, ms: k.ms - was.ms };
	}
	return { kinds, deadlocks: after.deadlocks - before.deadlocks, lockWaitTimeouts: after.lockWaitTimeouts - before.lockWaitTimeouts };
}
