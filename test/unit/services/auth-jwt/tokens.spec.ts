import type { KeyObject } from "node:crypto";
import { createHmac, generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { AccessClaims } from "../../../../services/auth-jwt/tokens.ts";
import { ACCESS_TTL_S, CLOCK_TOLERANCE_S, signAccess, verifyAccess } from "../../../../services/auth-jwt/tokens.ts";
import { forgeAccess } from "../../../harness/forged-tokens.ts";

const settings = { issuer: "https://edgehome.example/auth", audience: "edgehome-api" };
const claims: AccessClaims = { sub: "01m80spy4vd2d3wshwckzbkr5c", rgn: "eu-central", ep: 2, cli: "app", sid: "s-1" };

function keyPair(kid: string): { kid: string; privateKey: KeyObject; publicKey: KeyObject } {
	return { kid, ...generateKeyPairSync("ec", { namedCurve: "P-256" }) };
}

const current = keyPair("eu-central-2");
const retired = keyPair("eu-central-1");
const cnEast = keyPair("cn-east-4");
const keys = new Map([
	[current.kid, current.publicKey],
	[cnEast.kid, cnEast.publicKey]
]);
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
const parts = (token: string) => token.split(".") as [string, string, string];

async function rejection(token: string, now?: number): Promise<string> {
	return verifyAccess(settings, keys, token, now).then(
		() => "accepted",
		(err: { code?: string }) => err.code ?? String(err)
	);
}

describe("access tokens", () => {
	it("verify with their claims when signed by a trusted key", async () => {
		const token = await signAccess(settings, current, claims);
		expect(await verifyAccess(settings, keys, token)).toMatchObject({ ...claims, kid: "eu-central-2" });
	});

	it("refuse alg none", async () => {
		const [, payload] = parts(await signAccess(settings, current, claims));
		expect(await rejection(`${b64({ alg: "none", kid: current.kid })}.${payload}.`)).toBe("TOKEN_ALGORITHM");
	});

	it("refuse HS256 re-signed with the public key as the secret", async () => {
		const [, payload] = parts(await signAccess(settings, current, claims));
		const header = b64({ alg: "HS256", kid: current.kid, typ: "JWT" });
		const secret = current.publicKey.export({ type: "spki", format: "pem" });
		const sig = createHmac("sha256", secret).update(`${header}.${payload}`).digest("base64url");
		expect(await rejection(`${header}.${payload}.${sig}`)).toBe("TOKEN_ALGORITHM");
	});

	it("refuse a token with one payload byte changed", async () => {
		const [header, payload, sig] = parts(await signAccess(settings, current, claims));
		const bytes = Buffer.from(payload, "base64url");
		bytes[bytes.length - 3] = bytes[bytes.length - 3]! ^ 1;
		expect(await rejection(`${header}.${bytes.toString("base64url")}.${sig}`)).toMatch(/TOKEN_SIGNATURE|TOKEN_MALFORMED/);
	});

	it("accept expiry within the clock tolerance, refuse it beyond", async () => {
		const issued = Date.now() - ACCESS_TTL_S * 1000;
		const token = await signAccess(settings, current, claims, issued);
		expect(await rejection(token, issued + (ACCESS_TTL_S + CLOCK_TOLERANCE_S - 5) * 1000)).toBe("accepted");
		expect(await rejection(token, issued + (ACCESS_TTL_S + CLOCK_TOLERANCE_S + 5) * 1000)).toBe("TOKEN_EXPIRED");
	});

	it("refuse a token not valid yet (nbf in the future beyond tolerance)", async () => {
		const token = await signAccess(settings, current, claims, Date.now() + 5 * 60_000);
		expect(await rejection(token)).toBe("TOKEN_NOT_YET_VALID");
	});

	it("refuse a wrong issuer or audience", async () => {
		expect(await rejection(await signAccess({ ...settings, issuer: "https://evil.example" }, current, claims))).toBe("TOKEN_ISSUER");
		expect(await rejection(await signAccess({ ...settings, audience: "other-api" }, current, claims))).toBe("TOKEN_AUDIENCE");
	});

	it("refuse an opaque refresh token presented as an access token", async () => {
		expect(await rejection("rt_3f0c9a7b1e5d4c2a8b6f0e1d2c3b4a59.AbCdEf")).toBe("TOKEN_MALFORMED");
	});

	it("refuse a hostile kid without resolving it anywhere", async () => {
		const [, payload, sig] = parts(await signAccess(settings, current, claims));
		for (const kid of ["../../dev/null", "https://evil.example/jwks.json", "eu-central-2/../../etc/passwd", ""]) {
			const started = performance.now();
			expect(await rejection(`${b64({ alg: "ES256", kid, typ: "JWT" })}.${payload}.${sig}`)).toBe("TOKEN_KID_UNKNOWN");
			// A lookup in memory: no file read or network round trip could be this fast.
			expect(performance.now() - started).toBeLessThan(20);
		}
	});

	it("refuse a token signed by a retired key", async () => {
		expect(await rejection(await signAccess(settings, retired, claims))).toBe("TOKEN_KID_UNKNOWN");
	});

	it("refuse a token signed with one region's key for a user of another region", async () => {
		expect(await rejection(await signAccess(settings, cnEast, { ...claims, rgn: "eu-central" }))).toBe("TOKEN_REGION");
		expect(await rejection(await signAccess(settings, current, { ...claims, rgn: "cn-east" }))).toBe("TOKEN_REGION");
		// A region whose name is a prefix of the key's region is another region too.
		expect(await rejection(await signAccess(settings, cnEast, { ...claims, rgn: "cn" }))).toBe("TOKEN_REGION");
		expect(await rejection(await signAccess(settings, cnEast, { ...claims, rgn: "cn-east" }))).toBe("accepted");
	});

	it("refuse a token issued in the future beyond the clock tolerance, even when nbf says now", async () => {
		const now = Math.floor(Date.now() / 1000);
		expect(await rejection(await forgeAccess(settings, current, claims, { iat: now + 5 * 60, nbf: now, exp: now + 5 * 60 + ACCESS_TTL_S }))).toBe(
			"TOKEN_ISSUED_IN_FUTURE"
		);
		expect(await rejection(await forgeAccess(settings, current, claims, { iat: now + CLOCK_TOLERANCE_S - 5, nbf: now, exp: now + ACCESS_TTL_S }))).toBe(
			"accepted"
		);
	});

	it("refuse a token that lives longer than an access token", async () => {
		const now = Math.floor(Date.now() / 1000);
		expect(await rejection(await forgeAccess(settings, current, claims, { iat: now, nbf: now, exp: now + 365 * 24 * 3600 }))).toBe("TOKEN_LIFETIME");
		expect(await rejection(await forgeAccess(settings, current, claims, { iat: now, nbf: now, exp: now + ACCESS_TTL_S + 1 }))).toBe("TOKEN_LIFETIME");
		expect(await rejection(await forgeAccess(settings, current, claims, { iat: now, nbf: now, exp: now + ACCESS_TTL_S }))).toBe("accepted");
	});

	it("refuse a token whose claims are incomplete or of the wrong client type", async () => {
		expect(await rejection(await signAccess(settings, current, { ...claims, cli: "tv" as never }))).toBe("TOKEN_CLAIMS");
	});
});
