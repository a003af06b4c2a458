import type { DeclaredError } from "./declared-errors.ts";
import { BODY_ENCODINGS, FORBIDDEN_KEY } from "./request.ts";

/** What a gateway answers for a failure: `{"error": {code, message, requestId, details?}}` with `status`. */
export interface HttpError {
	status: number;
	code: string;
	message: string;
	details?: { field: string; message: string }[];
	/** Seconds, sent as Retry-After. */
	retryAfter?: number;
	/** Headers the answer needs (Allow on a 405, Accept-Encoding on a 415). */
	headers?: Record<string, string>;
}

interface AnyError {
	name?: string;
	message?: string;
	code?: unknown;
	status?: unknown;
	type?: unknown;
	data?: unknown;
}

/** Downstream 503s a client should retry after a while. */
const RETRYABLE_503: Record<string, number> = {
	REGION_UNAVAILABLE: 5,
	USER_MOVING: 1,
	WRITE_CONFLICT: 1,
	AUTH_UNAVAILABLE: 2,
	DIRECTORY_UNAVAILABLE: 3,
	WX_NOT_CONFIGURED: 60,
	// A gateway full of live streams, or stopping: another node takes the next try.
	STREAMS_UNAVAILABLE: 5,
	// A file's transfer between the gateway and the home broke off (a node gone, the session expired): sending it again starts anew.
	TRANSFER_INTERRUPTED: 1
};

const UPSTREAM_MISSING = new Set(["SERVICE_NOT_FOUND", "SERVICE_NOT_AVAILABLE", "SERVICE_UNAVAILABLE"]);

function allowOf(data: unknown): string {
	const v = (data as { allow?: unknown } | undefined)?.allow;
	return typeof v === "string" ? v : "";
}

function retryAfterOf(data: unknown): number | undefined {
	const v = (data as { retryAfter?: unknown } | undefined)?.retryAfter;
	return typeof v === "number" && Number.isFinite(v) && v > 0 ? Math.ceil(v) : undefined;
}

/** fastest-validator's findings, without `actual` (it would echo passwords back). */
function validationDetails(data: unknown): { field: string; message: string }[] | undefined {
	if (!Array.isArray(data)) return undefined;
	return data.slice(0, 20).map(d => {
		const item = d as { field?: unknown; message?: unknown; type?: unknown };
		return {
			field: typeof item.field === "string" ? item.field : "(body)",
			message: typeof item.message === "string" ? item.message : String(item.type ?? "invalid")
		};
	});
}

/**
 * Maps any error to what a client may see. Our services' client errors (4xx) keep their code and
 * message; everything else becomes a generic answer that names no service, node or stack.
 * `calledAction`: whether the request had reached its action (a missing service after that point is
 * an upstream failure, before it an unknown route). `declaredErrors`: the route's, for those it
 * declares answered as raised.
 */
export function toHttpError(raw: unknown, calledAction: boolean, declaredErrors: readonly DeclaredError[] = []): HttpError {
	const err = (raw && typeof raw === "object" ? raw : {}) as AnyError;
	const type = typeof err.type === "string" ? err.type : "";
	const code = typeof err.code === "number" ? err.code : typeof err.status === "number" ? err.status : 500;
	const message = typeof err.message === "string" ? err.message.slice(0, 300) : "";

	// The request itself, before any route ran: its body (body-parser's errors), its method.
	if (type === "entity.too.large" || (code === 413 && !type))
		return { status: 413, code: "PAYLOAD_TOO_LARGE", message: "request body is larger than the limit" };
	if (type === "entity.parse.failed" && message === FORBIDDEN_KEY) return { status: 400, code: "VALIDATION_FAILED", message: FORBIDDEN_KEY };
	if (type === "entity.parse.failed") return { status: 400, code: "VALIDATION_FAILED", message: "request body is not valid JSON" };
	if (type === "encoding.unsupported")
		return {
			status: 415,
			code: "UNSUPPORTED_MEDIA_TYPE",
			message: `request body encoding is not supported: send it as is or ${BODY_ENCODINGS}`,
			headers: { "Accept-Encoding": BODY_ENCODINGS }
		};
	if (type === "charset.unsupported") return { status: 415, code: "UNSUPPORTED_MEDIA_TYPE", message: "request body charset is not supported: send UTF-8" };
	// A body that could not be read: broken gzip (zlib's codes are strings), cut short, longer than its Content-Length.
	if (!calledAction && (typeof err.code === "string" || type.startsWith("request.") || (code === 400 && !type)))
		return { status: 400, code: "BAD_REQUEST", message: "request body could not be read" };
	if (code === 405) return { status: 405, code: "METHOD_NOT_ALLOWED", message: "this path does not answer this method", headers: { Allow: allowOf(err.data) } };
	if (calledAction && declaredErrors.some(d => d.asRaised && d.type === type && d.status === code))
		return { status: code, code: type, message: message || type.toLowerCase().replace(/_/g, " ") };

	if (type === "VALIDATION_ERROR") return { status: 400, code: "VALIDATION_FAILED", message: "request is not valid", details: validationDetails(err.data) };
	if (UPSTREAM_MISSING.has(type) && calledAction)
		return { status: 502, code: "UPSTREAM_UNAVAILABLE", message: "a service needed for this request is not available" };
	// Before its route ran, a 404 is a path nothing answers; after, it is the handler's own (a missing session).
	if (type === "SERVICE_NOT_FOUND" || (code === 404 && !calledAction)) return { status: 404, code: "NOT_FOUND", message: "no such route" };
	// Sent, unanswered: it may have been applied. Not the same as a timeout of a call that surely did not run.
	if (type === "OUTCOME_UNKNOWN")
		return {
			status: 504,
			code: "OUTCOME_UNKNOWN",
			message: "the request may or may not have been applied; check before repeating it",
			retryAfter: retryAfterOf(err.data) ?? 1
		};
	if (type === "REQUEST_TIMEOUT" || type === "UPSTREAM_TIMEOUT") return { status: 504, code: "UPSTREAM_TIMEOUT", message: "the request took too long" };
	if (type in RETRYABLE_503)
		return { status: 503, code: type, message: message || "try again later", retryAfter: retryAfterOf(err.data) ?? RETRYABLE_503[type] };
	if (code === 429) return { status: 429, code: "RATE_LIMITED", message: message || "too many requests", retryAfter: retryAfterOf(err.data) ?? 60 };
	if (code === 401) return { status: 401, code: "UNAUTHORIZED", message: message || "authentication required" };
	if (type === "ORIGIN_NOT_ALLOWED") return { status: 403, code: "ORIGIN_NOT_ALLOWED", message: "this origin is not allowed" };
	if (code === 404) return { status: 404, code: "NOT_FOUND", message: message || "not found" };
	if (code === 422) return { status: 400, code: "VALIDATION_FAILED", message: message || "request is not valid", details: validationDetails(err.data) };
	if (type === "UPSTREAM_FAILED") return { status: 502, code: "UPSTREAM_FAILED", message: message || "an upstream service failed" };
	if (code === 503) return { status: 503, code: "UNAVAILABLE", message: "temporarily unavailable", retryAfter: retryAfterOf(err.data) ?? 5 };
	if (code === 502) return { status: 502, code: "UPSTREAM_FAILED", message: "an upstream service failed" };
	// Our services' client errors: a stable code and a message written for users.
	if (code >= 400 && code < 500 && /^[A-Z][A-Z0-9_]{2,40}$/.test(type))
		return { status: code, code: type, message: message || type.toLowerCase().replace(/_/g, " ") };
	// A 403 without a code of its own: refused, saying no more.
	if (code === 403) return { status: 403, code: "FORBIDDEN", message: "not allowed" };
	return { status: 500, code: "INTERNAL", message: "internal error" };
}
