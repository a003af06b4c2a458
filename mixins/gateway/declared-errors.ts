import { Errors } from "moleculer";
import { DirectoryUnavailableError, OutcomeUnknownError, RegionUnavailableError, UserMovingError, WriteConflictError } from "../../regions/errors.ts";

/**
 * One error as a catalogue declares it: the stable code (Moleculer's `type`) and the status it is
 * raised with. A route lists the ones its handler may pass on; its OpenAPI responses are what the
 * gateway makes of each (`toHttpError`), so the document follows the edge's mapping. Services'
 * errors come from their catalogues (services/<svc>/errors.ts), handed in by the gateway services.
 */
export interface DeclaredError {
	readonly type: string;
	readonly status: number;
	/**
	 * Answered with its own status and code, not the edge's reading of its status (any 404 is
	 * NOT_FOUND, any 422 a validation failure): for refusals a client must tell apart, such as a
	 * payment's 422 INSUFFICIENT_FUNDS and 404 RECIPIENT_NOT_FOUND.
	 */
	readonly asRaised?: true;
}

/** An entry read from the catalogue's own error class, so its values are never restated. */
export function declared(err: { type: string; code: number }, opts: { asRaised?: true } = {}): DeclaredError {
	if (opts.asRaised && !(err.code >= 400 && err.code < 500)) throw new Error(`${err.type}: only a client error (4xx) is answered as raised`);
	return opts.asRaised ? { type: err.type, status: err.code, asRaised: true } : { type: err.type, status: err.code };
}

/** What any call from a gateway to a service may end in: Moleculer's own failures and the region runtime's answers. */
export const CALL_FAILURES: readonly DeclaredError[] = [
	declared(new Errors.ServiceNotAvailableError({ action: "-", nodeID: "-" })),
	declared(new Errors.RequestTimeoutError({ action: "-", nodeID: "-" })),
	declared(new RegionUnavailableError("-")),
	declared(new UserMovingError("-")),
	declared(new DirectoryUnavailableError("-")),
	declared(new OutcomeUnknownError("-", "-", "-")),
	declared(new WriteConflictError("-", 0))
];
