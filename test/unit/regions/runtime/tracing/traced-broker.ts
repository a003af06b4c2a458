import { Writable } from "node:stream";
import type { BrokerOptions } from "moleculer";
import { ServiceBroker } from "moleculer";
import type { Logger } from "pino";
import { pino } from "pino";
import { logContext } from "../../../../../regions/runtime/logger.ts";
import { RequestContextMiddleware } from "../../../../../regions/runtime/request-context.ts";
import { ActionSpans } from "../../../../../regions/runtime/tracing/action-spans.ts";
import { brokerTracing } from "../../../../../regions/runtime/tracing/config.ts";
import type { ProcessTracing } from "../../../../../regions/runtime/tracing/process-sdk.ts";
import { startProcessTracing } from "../../../../../regions/runtime/tracing/process-sdk.ts";
import type { OtlpReceiver } from "../../../../harness/otlp-receiver.ts";

/** This process's tracing, as a process of `region` (group "test"), sending to `receiver` within 20 ms unless `env` says otherwise; the spec stops it after its brokers. */
export function traceTo(receiver: OtlpReceiver, region: string, env: Record<string, string> = {}): ProcessTracing {
	return startProcessTracing({ EDGEHOME_OTLP_URL: receiver.url, EDGEHOME_TRACE_EXPORT_DELAY_MS: "20", ...env }, { regions: [region], group: "test" })!;
}

/**
 * A broker of `region` whose spans go through the process's tracing (traceTo), with the request scope
 * and action spans of a region node (for queries and log lines); `options` adds a transporter, say.
 */
export function tracedBroker(region: string, nodeID: string, options: BrokerOptions = {}): ServiceBroker {
	return new ServiceBroker({
		nodeID,
		logger: false,
		metadata: { region },
		tracing: brokerTracing({}, { region, nodeID }),
		middlewares: [RequestContextMiddleware, ActionSpans],
		...options
	});
}

/** A pino logger like the process's own (same mixin), writing its lines into `lines`. */
export function capturedLog(): { log: Logger; lines: Record<string, unknown>[] } {
	const lines: Record<string, unknown>[] = [];
	const log = pino(
		{ mixin: logContext },
		new Writable({
			write(chunk, _enc, done) {
				lines.push(JSON.parse(String(chunk)));
				done();
			}
		})
	);
	return { log, lines };
}
