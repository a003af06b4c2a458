import type { ParseArgsOptionsConfig } from "node:util";
import { parseArgs } from "node:util";

/** Parses launcher flags; an unknown flag is an error, not ignored. */
export function launcherArgs<T extends ParseArgsOptionsConfig>(options: T) {
	return parseArgs({ options, allowPositionals: false, strict: true }).values;
}
