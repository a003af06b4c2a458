import type { IdGenerator } from "@opentelemetry/sdk-trace";

/**
 * Hands the ids of the span being converted to the SDK: a converted span keeps the ids Moleculer
 * gave it (and passed on to its children in other processes), not new ones. The SDK asks for them
 * synchronously inside `startSpan`, right after they are staged, so one generator serves every
 * broker of the process.
 */
export class StagedIds implements IdGenerator {
	private traceId = "";
	private spanId = "";

	stage(traceId: string, spanId: string): void {
		this.traceId = traceId;
		this.spanId = spanId;
	}

	generateTraceId(): string {
		return this.traceId;
	}

	generateSpanId(): string {
		return this.spanId;
	}
}
