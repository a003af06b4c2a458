import type { DatabaseSync } from "node:sqlite";

/**
 * Runs `work` in one IMMEDIATE transaction: the write lock is taken up front, so a check and the
 * write after it see the same state, and another process sharing the file waits instead of racing.
 * Committed when `work` returns, rolled back when it throws.
 */
export function immediateTransaction<R>(db: DatabaseSync, work: () => R): R {
	db.exec("BEGIN IMMEDIATE");
	try {
		const result = work();
		db.exec("COMMIT");
		return result;
	} catch (err) {
		db.exec("ROLLBACK");
		throw err;
	}
}
