import { describe, expect, it } from "vitest";
import { parseTraceparent, spanIdOf, traceIdOf, traceparentOf } from "../../../../../regions/runtime/tracing/ids.ts";

describe("W3C ids of Moleculer's ids", () => {
	it("keeps a 32-hex request id as the trace id, drops a UUID's dashes and hashes anything else, the same on every node", () => {
		expect(traceIdOf("4bf92f3577b34da6a3ce929d0e0e4736")).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
		expect(traceIdOf("3f6c1e0a-9b7d-4c2e-8a1f-5d6e7f809a1b")).toBe("3f6c1e0a9b7d4c2e8a1f5d6e7f809a1b");
		const hashed = traceIdOf("req-12345678");
		expect(hashed).toMatch(/^[0-9a-f]{32}$/);
		expect(traceIdOf("req-12345678")).toBe(hashed);
		expect(traceIdOf("0".repeat(32))).toMatch(/^(?!0+$)[0-9a-f]{32}$/);
	});

	it("gives a span id of 16 hex digits: a 16-hex id as it is, a UUID's first 64 bits", () => {
		expect(spanIdOf("00f067aa0ba902b7")).toBe("00f067aa0ba902b7");
		expect(spanIdOf("3f6c1e0a-9b7d-4c2e-8a1f-5d6e7f809a1b")).toBe("3f6c1e0a9b7d4c2e");
		expect(spanIdOf("node-1:42")).toMatch(/^[0-9a-f]{16}$/);
	});

	it("writes and reads traceparent headers, refusing a malformed or all-zero one", () => {
		const header = traceparentOf({ traceID: "3f6c1e0a-9b7d-4c2e-8a1f-5d6e7f809a1b", id: "00f067aa0ba902b7", sampled: true });
		expect(header).toBe("00-3f6c1e0a9b7d4c2e8a1f5d6e7f809a1b-00f067aa0ba902b7-01");
		expect(parseTraceparent(header)).toEqual({ traceId: "3f6c1e0a9b7d4c2e8a1f5d6e7f809a1b", parentId: "00f067aa0ba902b7", sampled: true });
		expect(parseTraceparent(" 00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-00 ")).toMatchObject({ sampled: false });
		for (const bad of [
			undefined,
			"",
			"garbage",
			"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			`00-${"0".repeat(32)}-00f067aa0ba902b7-01`,
			`00-4bf92f3577b34da6a3ce929d0e0e4736-${"0".repeat(16)}-01`
		])
			expect(parseTraceparent(bad)).toBeUndefined();
	});
});
