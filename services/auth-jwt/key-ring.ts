import type { JsonWebKey, KeyObject } from "node:crypto";
import { createPublicKey } from "node:crypto";
import { kidRegion } from "./key-id.ts";

/** A public key as published in the JWKS. */
export interface PublicJwk extends JsonWebKey {
	kid: string;
	alg: "ES256";
	use: "sig";
}

const P256_COORD = /^[A-Za-z0-9_-]{43}$/;

function usable(jwk: Record<string, unknown>, region: string): jwk is PublicJwk {
	return (
		typeof jwk.kid === "string" &&
		kidRegion(jwk.kid) === region &&
		jwk.kty === "EC" &&
		jwk.crv === "P-256" &&
		jwk.alg === "ES256" &&
		typeof jwk.x === "string" &&
		P256_COORD.test(jwk.x) &&
		typeof jwk.y === "string" &&
		P256_COORD.test(jwk.y) &&
		jwk.d === undefined
	);
}

/**
 * The public keys this node trusts: every region's published keys, each region's set replaced
 * whole when it changes. A region may only publish keys named after itself, so one region can
 * never stand in for another.
 */
export class KeyRing {
	private readonly byRegion = new Map<string, PublicJwk[]>();
	private readonly objects = new Map<string, KeyObject>();

	setRegion(region: string, keys: Record<string, unknown>[]): void {
		const accepted = keys
			.filter(k => usable(k, region))
			.map(k => ({ kty: "EC", crv: "P-256", x: k.x, y: k.y, kid: k.kid, alg: "ES256", use: "sig" }) as PublicJwk);
		for (const old of this.byRegion.get(region) ?? []) this.objects.delete(old.kid);
		this.byRegion.set(region, accepted);
		for (const jwk of accepted) this.objects.set(jwk.kid, createPublicKey({ key: jwk, format: "jwk" }));
	}

	/** kid → key, for verification; a kid is only ever looked up here, never fetched. */
	get keys(): ReadonlyMap<string, KeyObject> {
		return this.objects;
	}

	/** The combined JWKS of every region. */
	jwks(): { keys: PublicJwk[] } {
		return { keys: [...this.byRegion.values()].flat().sort((a, b) => a.kid.localeCompare(b.kid)) };
	}
}
