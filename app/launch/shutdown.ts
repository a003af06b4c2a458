import { RegionConfigError } from "../../regions/loader.ts";
import { EnvError } from "../../regions/runtime/env.ts";

/**
 * Stops the process cleanly on SIGTERM / SIGINT: `stop` drains (the brokers stop taking new
 * requests and finish in-flight ones, bounded by their shutdown timeout), then exit 0.
 * A second signal while draining exits at once.
 */
export function exitOnSignal(stop: () => Promise<void>, log: (msg: string) => void = m => console.error(m)): void {
	let stopping = false;
	const onSignal = (signal: NodeJS.Signals) => {
		if (stopping) {
			log(`${signal} again: exiting without waiting`);
			process.exit(130);
		}
		stopping = true;
		log(`${signal}: draining in-flight requests, then stopping`);
		stop().then(
			() => process.exit(0),
			err => {
				log(`stop failed: ${(err as Error).message}`);
				process.exit(1);
			}
		);
	};
	process.on("SIGTERM", onSignal);
	process.on("SIGINT", onSignal);
}

/** The one-line way a launcher fails: no stack trace for a configuration or connection problem. */
export function fail(message: string, code = 1): never {
	console.error(`edgehome: ${message}`);
	process.exit(code);
}

/** Configuration mistakes exit 2, so scripts can tell them from a server that is down (1). */
export function isConfigError(err: unknown): boolean {
	return err instanceof RegionConfigError || err instanceof EnvError;
}
