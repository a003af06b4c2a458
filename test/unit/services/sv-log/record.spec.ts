import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { Position } from "../../../../services/sv-log/record.ts";
import { byListingOrder, canonicalJson, cursorOf, GENESIS, hashOf, parseCursor } from "../../../../services/sv-log/record.ts";

describe("audit records", () => {
	it("have one canonical JSON text whatever order their keys were built in", () => {
		expect(canonicalJson({ b: 1, a: { d: [2, { z: null, y: "x" }], c: true }, u: undefined })).toBe('{"a":{"c":true,"d":[2,{"y":"x","z":null}]},"b":1}');
		expect(canonicalJson({ a: 1, b: 2 })).toBe(canonicalJson({ b: 2, a: 1 }));
	});

	it("hash to SHA-256 of the canonical JSON of every field but the hash, so a change of any field changes it", () => {
		const linked = {
			region: "cn-east",
			seq: 7,
			id: "m-7",
			at: 1_700_000_000_000,
			actor: "0".repeat(26),
			action: "auth.login",
			target: null,
			outcome: "success" as const,
			requestId: "r",
			traceId: null,
			ipHash: null,
			detail: { sid: "s", client: "www" },
			loggedAt: 1_700_000_000_001,
			prevHash: GENESIS
		};
		expect(hashOf(linked)).toBe(createHash("sha256").update(canonicalJson(linked)).digest("hex"));
		// The hash the chains already stored were built with: computed any other way, they would no longer verify.
		expect(hashOf(linked)).toBe("f0a9ba40d0935f26e80a6f3484b722da2e2db323c0b5900209d799da59f80c90");
		expect(hashOf({ ...linked, hash: "ignored" } as never)).toBe(hashOf(linked));
		for (const [field, value] of Object.entries({ seq: 8, actor: "x", detail: { sid: "t", client: "www" }, prevHash: "1".repeat(64), target: "y" }))
			expect(hashOf({ ...linked, [field]: value }), field).not.toBe(hashOf(linked));
	});

	it("list newest first, then by region and chain position, and a cursor round-trips a position", () => {
		const positions: Position[] = [
			{ at: 1, region: "ap-south", seq: 1 },
			{ at: 2, region: "ap-south", seq: 2 },
			{ at: 2, region: "eu-central", seq: 1 },
			{ at: 2, region: "eu-central", seq: 3 }
		];
		expect([...positions].sort(byListingOrder)).toEqual([positions[3], positions[2], positions[1], positions[0]]);
		for (const p of positions) expect(parseCursor(cursorOf(p))).toEqual(p);
	});
});
