import { regionId } from "../../kernel/fields.ts";
import { CURSOR } from "./record.ts";

/** The most records one page lists. */
export const MAX_PAGE = 500;

/** `<area>.<verb>`: lower case words joined by dots. */
export const ACTION = /^[a-z][a-z0-9-]*(\.[a-z0-9-]+){0,3}$/;
/** A date, or a date and time with its offset (ISO 8601), as `from` and `to` take it. */
const INSTANT = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2}))?$/;

const instant = {
	type: "string",
	max: 35,
	pattern: INSTANT,
	optional: true,
	messages: { stringPattern: "must be an ISO 8601 date or date-time with offset, e.g. 2025-01-31T12:00:00Z" }
} as const;

/** What a query of the audit log filters on, for the cms route and sv-log's actions alike. */
export const FILTER_PARAMS = {
	actor: { type: "string", min: 1, max: 64, optional: true },
	target: { type: "string", min: 1, max: 128, optional: true },
	action: { type: "string", max: 64, pattern: ACTION, optional: true, messages: { stringPattern: "must be an action such as auth.login" } },
	from: instant,
	to: instant,
	requestId: { type: "string", min: 1, max: 64, optional: true },
	cursor: { type: "string", max: 64, pattern: CURSOR, optional: true, messages: { stringPattern: "must be a cursor this API returned" } },
	limit: { type: "number", integer: true, min: 1, max: MAX_PAGE, default: 50, convert: true }
} as const;

export const optionalRegion = { ...regionId, optional: true } as const;

export interface FilterParams {
	actor?: string;
	target?: string;
	action?: string;
	from?: string;
	to?: string;
	requestId?: string;
	cursor?: string;
	limit: number;
}
