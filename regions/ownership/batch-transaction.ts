import type { Kysely } from "kysely";
import type { StatementGroups } from "../stores/grouped-transaction.ts";
import { groupedTransaction, UncertainCommitError } from "../stores/grouped-transaction.ts";
import { isDeadlock, isLockConflict } from "../stores/lock-errors.ts";
import { isDuplicateKey } from "../stores/sql.ts";

/** How a group commit's batch ended. */
export type BatchRun<T> =
	| { kind: "committed"; value: T }
	/** The COMMIT itself failed: whether the batch applied cannot be told. */
	| { kind: "unknown"; error: unknown }
	/** Rolled back for another transaction (deadlock, lock wait, duplicate key) every time it ran. */
	| { kind: "gave-up"; error: unknown }
	/** Rolled back for a reason of its own: running it again would meet it again. */
	| { kind: "refused"; error: unknown };

/**
 * Runs a group commit's batch (sv-money's transfers, sv-notice's sends) in one transaction of `db`:
 * `apply` reads and writes the whole set, one statement at a time on `trx` or several at once
 * through `groups` (grouped-transaction.ts). A batch the store rolled back for another
 * transaction (a deadlock, a lock wait, a duplicate key another one inserted first) applied
 * nothing, so it runs again from the start after a short random wait, at most `attempts` times in all.
 */
export async function runBatch<T>(
	db: Kysely<any>,
	apply: (trx: Kysely<any>, groups: StatementGroups) => Promise<T>,
	attempts: number,
	onRerun: () => void,
	transaction: typeof groupedTransaction = groupedTransaction
): Promise<BatchRun<T>> {
	for (let attempt = 1; ; attempt++) {
		try {
			return { kind: "committed", value: await transaction(db, apply) };
		} catch (error) {
			if (error instanceof UncertainCommitError) return { kind: "unknown", error: error.reason };
			if (!(isDeadlock(error) || isLockConflict(error) || isDuplicateKey(error))) return { kind: "refused", error };
			if (attempt >= attempts) return { kind: "gave-up", error };
			onRerun();
			await new Promise(r => setTimeout(r, Math.random() * 10 * 2 ** attempt));
		}
	}
}
