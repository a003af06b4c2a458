import { CALL_FAILURES } from "../../mixins/gateway/declared-errors.ts";
import { MONEY_ERRORS } from "../../services/gateway-errors.ts";
import type { Outcome } from "./bank-checker.ts";
import type { Reply } from "./session.ts";

/** sv-money's refusals, from its catalogue, and its parameter check's: raised before anything is written. */
export const MONEY_REFUSALS: readonly string[] = [...Object.values(MONEY_ERRORS).map(e => e.type), "VALIDATION_ERROR"];

/** What any call may end in besides the service's own answers: Moleculer's failures and the region runtime's. */
export const CALL_FAILURE_CODES: readonly string[] = CALL_FAILURES.map(e => e.type);

/** The region runtime's refusals that promise nothing was sent (regions/errors.ts): not applied, safe to send again. */
const NOT_SENT: readonly string[] = ["USER_MOVING", "REGION_UNAVAILABLE", "DIRECTORY_UNAVAILABLE", "WRITE_CONFLICT"];

/** How the bank's checker reads a reply (bank-checker.ts, Outcome). */
export function outcomeOf(reply: Reply): Outcome {
	if (reply.ok) return "ok";
	if (MONEY_REFUSALS.includes(reply.type)) return "refused";
	return NOT_SENT.includes(reply.type) ? "fail" : "unknown";
}
