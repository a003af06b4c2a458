import type { Logger as PinoLogger } from "pino";
import { pino } from "pino";
import { currentRequestID } from "./request-context.ts";

let root: PinoLogger | undefined;

/**
 * One pino root per process: JSON lines (for shipping to sv-log), pretty only when a person
 * watches a terminal. Every line carries the request id of the call it was logged in.
 */
export function rootLogger(level: string, format: "json" | "pretty"): PinoLogger {
	root ??= pino({
		level: "trace",
		base: { pid: process.pid },
		timestamp: pino.stdTimeFunctions.isoTime,
		mixin() {
			const requestID = currentRequestID();
			return requestID ? { requestID } : {};
		},
		...(format === "pretty"
			? { transport: { target: "pino-pretty", options: { colorize: true, translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname" } } }
			: {})
	});
	root.level = level;
	return root;
}
