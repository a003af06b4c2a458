import type { ServiceBroker } from "moleculer";
import { busWatchOf } from "./bus-watch.ts";
import { findRegionRuntime } from "./region-runtime.ts";
import { startupPending } from "./startup.ts";

/** Stable check values: what an operator or a probe reads; the causes go to the log. */
export type CheckState = "ok" | "pending" | "starting" | "stopping" | "disconnected" | "failing";

export interface Readiness {
	ready: boolean;
	checks: Record<string, CheckState>;
}

/**
 * Ready = the launcher's start-up work is done, the broker started (so every service ran its
 * migrations) and is not draining, its bus connection is up, and the region's stores answer.
 */
export async function readiness(broker: ServiceBroker): Promise<Readiness> {
	const checks: Readiness["checks"] = {};
	checks.startup = startupPending() ? "pending" : "ok";
	checks.broker = broker.stopping ? "stopping" : broker.started ? "ok" : "starting";
	if (broker.transit) checks.transporter = broker.transit.connected && busWatchOf(broker)?.connected !== false ? "ok" : "disconnected";
	const runtime = findRegionRuntime(broker);
	if (runtime?.has("stores")) {
		checks.stores = await runtime.stores
			.ping()
			.then((): CheckState => "ok")
			.catch((err: Error): CheckState => {
				broker.logger.warn(`readiness: a store does not answer: ${err.message}`);
				return "failing";
			});
	}
	return { ready: Object.values(checks).every(v => v === "ok"), checks };
}
