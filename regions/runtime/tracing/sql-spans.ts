import type { LogEvent } from "kysely";
import { currentSpan } from "../request-context.ts";
import { OTEL_TAG } from "./semantics.ts";

const OPERATION = /^\s*(\w+)/;
const TABLE = /\b(?:from|into|update|join|table)\s+[`"[]?([A-Za-z0-9_$.]+)/i;
/** Literals a statement may hold despite bound parameters: text in quotes, hex and numbers. */
const LITERALS = /'(?:[^'\\]|\\.|'')*'|\bx'[0-9a-f]*'|\b0x[0-9a-f]+\b|\b\d+(?:\.\d+)?\b/gi;

/**
 * Kysely's query log as spans: each query run while a sampled handler runs (a Moleculer span in
 * the request scope) becomes its child, a client span named and described by the database
 * semantic conventions. The statement is kept with its literals replaced by `?` (values are bound
 * parameters anyway, never exported). Outside a sampled trace it costs a scope lookup.
 */
export function sqlQuerySpans(system: "mysql" | "sqlite", namespace?: string): (event: LogEvent) => void {
	return event => {
		const parent = currentSpan();
		if (!parent?.sampled) return;
		// A log hook that throws would fail the query it describes.
		try {
			const text = event.query.sql;
			const operation = OPERATION.exec(text)?.[1]?.toUpperCase();
			const table = TABLE.exec(text)?.[1];
			const end = Date.now();
			const span = parent.startSpan(operation ? (table ? `${operation} ${table}` : operation) : system, {
				type: "db",
				tags: {
					[OTEL_TAG]: {
						"db.system.name": system,
						...(namespace ? { "db.namespace": namespace } : {}),
						...(operation ? { "db.operation.name": operation } : {}),
						...(table ? { "db.collection.name": table } : {}),
						"db.query.text": text.replace(LITERALS, "?")
					}
				}
			});
			span.startTime = end - event.queryDurationMillis;
			if (event.level === "error") span.setError(event.error as Error);
			span.finish(end);
		} catch {
			// The span is lost; the query stands.
		}
	};
}
