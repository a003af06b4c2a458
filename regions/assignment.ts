import type { RegionDefinition } from "./region.ts";

export interface Assignment {
	region: string;
	/** The country's residency rule keeps the user in this region. */
	pinned: boolean;
}

/**
 * Where a new user lives: a residency pin always wins; otherwise the region that serves the
 * country; a user with no (or an unserved) country stays where the request came in.
 */
export function assignRegion(regions: RegionDefinition[], receivedBy: string, country?: string): Assignment {
	if (country) {
		const pinnedBy = regions.find(r => r.residency.includes(country));
		if (pinnedBy) return { region: pinnedBy.id, pinned: true };
		const serves = regions.find(r => r.countries.includes(country));
		if (serves) return { region: serves.id, pinned: false };
	}
	return { region: receivedBy, pinned: false };
}
