/**
 * A signing key's id names the region that owns the key and its generation, e.g. `eu-central-3`:
 * verification binds a key to that region, so one region's key cannot sign for another's users.
 */
export const KID = /^[a-z][a-z0-9-]{1,40}-[0-9]{1,6}$/;

export function keyId(region: string, generation: number): string {
	return `${region}-${generation}`;
}

/** The region a key id names, or undefined for anything that is not `<region>-<generation>`. */
export function kidRegion(kid: string): string | undefined {
	return KID.test(kid) ? kid.slice(0, kid.lastIndexOf("-")) : undefined;
}
