import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { KeyRing } from "../../../../services/auth-jwt/key-ring.ts";

const publicJwk = (kid: string) => ({
	...generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ format: "jwk" }),
	kid,
	alg: "ES256",
	use: "sig"
});

describe("key ring", () => {
	it("takes from a region only keys named after exactly that region", () => {
		const ring = new KeyRing();
		ring.setRegion("cn-east", [publicJwk("cn-east-1")]);
		// "cn" is a prefix of "cn-east": it must not publish (or replace) cn-east's keys.
		ring.setRegion("cn", [publicJwk("cn-east-1"), publicJwk("cn-east-2"), publicJwk("cn-3")]);
		ring.setRegion("ap-south", [publicJwk("cn-east-9"), publicJwk("ap-south-1")]);
		expect(ring.jwks().keys.map(k => k.kid)).toEqual(["ap-south-1", "cn-3", "cn-east-1"]);
		expect(ring.keys.get("cn-east-1")!.export({ format: "jwk" }).x).toBe(ring.jwks().keys.find(k => k.kid === "cn-east-1")!.x);
	});
});
