import type { RegionDefinition } from "../../regions/region.ts";

/** What every project command of the REPL gets: the regions it can name and where to print. */
export interface ReplContext {
	regions: RegionDefinition[];
	print: (line: string) => void;
}
