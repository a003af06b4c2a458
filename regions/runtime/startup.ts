/**
 * Start-up work a launcher does after its nodes run (the first administrator): until it is done,
 * every node of the process answers not-ready, so "ready" means a client can use what it was promised.
 */
const pending = new Set<symbol>();

/** Holds readiness until the returned function is called. */
export function holdReadiness(): () => void {
	const hold = Symbol("startup");
	pending.add(hold);
	return () => void pending.delete(hold);
}

export function startupPending(): boolean {
	return pending.size > 0;
}
