/** MySQL's answers that mean a lock decided the statement's fate, not the statement itself. */

/** Deadlock found / lock wait timeout: the statement (or its transaction) was rolled back, nothing of it applied. */
const LOCK_CONFLICTS = new Set([1213, 1205]);

export function isLockConflict(err: unknown): boolean {
	return LOCK_CONFLICTS.has((err as { errno?: number }).errno ?? 0);
}

/** A deadlock's victim: InnoDB rolled its whole transaction back (a lock wait timeout undoes only the statement). */
export function isDeadlock(err: unknown): boolean {
	return (err as { errno?: number }).errno === 1213;
}
