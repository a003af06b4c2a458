import { describe, expect, it } from "vitest";
import { traceContext } from "../../../../mixins/gateway/trace-context.ts";

describe("traceContext", () => {
	it("continues a valid traceparent: same trace, new span, same flags", () => {
		const t = traceContext({ traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00" });
		expect(t.requestId).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
		expect(t.traceparent).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-00$/);
		expect(t.traceparent).not.toContain("00f067aa0ba902b7");
	});

	it("starts a new trace for a missing, malformed or all-zero traceparent, answering none, keeping a sane X-Request-Id", () => {
		for (const traceparent of [
			undefined,
			"garbage",
			"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
			"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		]) {
			const t = traceContext({ traceparent });
			expect(t.requestId).toMatch(/^[0-9a-f]{32}$/);
			expect(t.traceparent).toBeUndefined();
		}
		expect(new Set(Array.from({ length: 100 }, () => traceContext({}).requestId)).size).toBe(100);
		expect(traceContext({ "x-request-id": "req-12345678" }).requestId).toBe("req-12345678");
		expect(traceContext({ "x-request-id": "bad id with spaces\nand a newline" }).requestId).toMatch(/^[0-9a-f]{32}$/);
	});

	it("draws well-formed, distinct new request ids across refills of its random pool", () => {
		const ids = Array.from({ length: 3 * 4096 + 7 }, () => traceContext({}).requestId);
		expect(ids.every(id => /^[0-9a-f]{32}$/.test(id))).toBe(true);
		expect(new Set(ids).size).toBe(ids.length);
	});
});
