import { createHmac, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { deriveKey, open, parsePiiKeys, SealedValueError, seal } from "../../../kernel/sealing.ts";

const master = randomBytes(32);
const keys = parsePiiKeys(`k1:${master.toString("base64")}`);
const ann = { table: "users", field: "email", row: "01ann00000000000000000000a" };
const bob = { table: "users", field: "email", row: "01bob00000000000000000000b" };

describe("sealing", () => {
	it("opens a value in the place it was sealed for, and its text is nowhere in the stored form", () => {
		const sealed = seal(keys, "ann@example.com", ann);
		expect(sealed.kid).toBe("k1");
		expect(sealed.value).toMatch(/^b1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
		expect(sealed.value).not.toContain("ann");
		expect(open(keys, sealed.kid, sealed.value, ann)).toBe("ann@example.com");
	});

	it("refuses a value moved to another row, field or table, naming where it was read", () => {
		const sealed = seal(keys, "ann@example.com", ann);
		for (const elsewhere of [bob, { ...ann, field: "phone" }, { ...ann, table: "auth_keys" }]) {
			const err = (() => {
				try {
					return open(keys, sealed.kid, sealed.value, elsewhere);
				} catch (e) {
					return e;
				}
			})();
			expect(err).toBeInstanceOf(SealedValueError);
			expect(err).toMatchObject({ code: 500, type: "SEALED_VALUE_INVALID", data: elsewhere });
			expect((err as Error).message).toMatch(/sealed for another row or field/);
		}
	});

	it("refuses an altered value, a truncated tag, a value of the unbound format and an unknown key id", () => {
		const [format, iv, tag, data] = seal(keys, "ann@example.com", ann).value.split(".");
		const flipped = Buffer.from(data!, "base64url");
		flipped[0]! ^= 1;
		const bad = [
			[format, iv, tag, flipped.toString("base64url")].join("."),
			[format, iv, Buffer.from(tag!, "base64url").subarray(0, 4).toString("base64url"), data].join("."),
			[iv, tag, data].join(".")
		];
		for (const value of bad) expect(() => open(keys, "k1", value, ann)).toThrow(SealedValueError);
		expect(() => open(keys, "k9", [format, iv, tag, data].join("."), ann)).toThrow(/no PII key "k9"/);
	});

	it("reads values sealed under an older key after rotation, and seals new ones under the first", () => {
		const old = seal(keys, "ann@example.com", ann);
		const rotated = parsePiiKeys(`k2:${randomBytes(32).toString("base64")},k1:${master.toString("base64")}`);
		expect(open(rotated, old.kid, old.value, ann)).toBe("ann@example.com");
		expect(seal(rotated, "x", ann).kid).toBe("k2");
	});
});

describe("one configured key, a derived key per purpose", () => {
	it("derives distinct sealing and login-throttle keys, neither equal to the configured key", () => {
		const sealing = keys.sealing.get("k1")!;
		const throttle = keys.loginThrottle;
		expect(sealing).toHaveLength(32);
		expect(throttle).toHaveLength(32);
		expect(new Set([master, sealing, throttle].map(k => k.toString("hex"))).size).toBe(3);
		// Stable across processes: the same configuration gives the same keys (every node of a region agrees).
		const again = parsePiiKeys(`k1:${master.toString("base64")}`);
		expect(again.sealing.get("k1")).toEqual(sealing);
		expect(again.loginThrottle).toEqual(throttle);
		expect(deriveKey(master, "loginThrottle")).toEqual(throttle);
	});

	it("keeps each purpose working: sealing round-trips, the throttle's name of a login is stable and not the sealing key's", () => {
		expect(open(keys, "k1", seal(keys, "+6591234567", { ...ann, field: "phone" }).value, { ...ann, field: "phone" })).toBe("+6591234567");
		const name = (key: Buffer) => createHmac("sha256", key).update("nobody@example.com").digest("base64url");
		expect(name(keys.loginThrottle)).toBe(name(parsePiiKeys(`k1:${master.toString("base64")}`).loginThrottle));
		expect(name(keys.loginThrottle)).not.toBe(name(keys.sealing.get("k1")!));
		expect(name(keys.loginThrottle)).not.toBe(name(master));
	});
});
