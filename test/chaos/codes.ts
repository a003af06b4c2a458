/**
 * The error codes a client may be answered with, as issue #10 documents them. Kept here, in one
 * place, so the contract can change without touching the checker. Any other code an operation
 * ends with (WRONG_REGION, SERVICE_NOT_AVAILABLE, REQUEST_TIMEOUT, USER_NOT_FOUND, …) is counted
 * as undocumented.
 */

/** A home-routed write (`ledger.append`). OUTCOME_UNKNOWN: maybe applied, never twice. WRITE_CONFLICT: a deadlock's victim on every run, not applied. */
export const DOCUMENTED_APPEND_CODES: readonly string[] = ["USER_MOVING", "REGION_UNAVAILABLE", "DIRECTORY_UNAVAILABLE", "OUTCOME_UNKNOWN", "WRITE_CONFLICT"];

/** `sv-region.move`. */
export const DOCUMENTED_MOVE_CODES: readonly string[] = [
	"MOVE_IN_PROGRESS",
	"MOVE_FAILED",
	"REGION_UNAVAILABLE",
	"DIRECTORY_UNAVAILABLE",
	"USER_MOVING",
	"RESIDENCY_VIOLATION"
];

/**
 * Outcomes the harness itself assigns, never the product: the entry node was SIGKILLed by a
 * nemesis with the call in flight, or the run ended (a move still running). Both leave the
 * outcome unknown and are not error codes.
 */
export const ENTRY_NODE_KILLED = "(entry node killed)";
export const STILL_RUNNING = "(still running at the end)";

/**
 * The product never answered within the harness's bound, far past its own timeouts (10 s per
 * call, 120 s per move): counted as an undocumented code.
 */
export const NO_ANSWER = "NO_ANSWER";

export function documented(kind: "append" | "move", code: string): boolean {
	return (kind === "append" ? DOCUMENTED_APPEND_CODES : DOCUMENTED_MOVE_CODES).includes(code);
}
