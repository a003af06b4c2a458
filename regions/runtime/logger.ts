import type { Logger as PinoLogger } from "pino";
import { pino } from "pino";
import { currentRequestID } from "./request-context.ts";
import { traceLogFields } from "./tracing/log-correlation.ts";

let root: PinoLogger | undefined;

/**
 * One pino root per process: JSON lines (for shipping to sv-log), pretty only when a person
 * watches a terminal. Every line carries the request id of the call it was logged in (and, while
 * tracing is on, its trace_id and span_id).
 */
export function rootLogger(level: string, format: "json" | "pretty"): PinoLogger {
	root ??= pino({
		level: "trace",
		base: { pid: process.pid },
		timestamp: pino.stdTimeFunctions.isoTime,
		mixin: logContext,
		...(format === "pretty"
			? { transport: { target: "pino-pretty", options: { colorize: true, translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname" } } }
			: {})
	});
	root.level = level;
	return root;
}

/** What every log line carries of the request it is written in. */
export function logContext(): Record<string, string> {
	const requestID = currentRequestID();
	const fields: Record<string, string> = requestID ? { requestID } : {};
	const trace = traceLogFields();
	return trace ? Object.assign(fields, trace) : fields;
}
