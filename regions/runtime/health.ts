import type { ServiceBroker } from "moleculer";
import { busWatchOf } from "./bus-watch.ts";
import type { GlobalStatus } from "./global-probe.ts";
import { globalProbeOf } from "./global-probe.ts";
import { findRegionRuntime } from "./region-runtime.ts";
import { startupPending } from "./startup.ts";

/** Stable check values: what an operator or a probe reads; the causes go to the log. */
export type CheckState = "ok" | "pending" | "starting" | "stopping" | "disconnected" | "failing";

export interface Readiness {
	ready: boolean;
	/** The broker's region, when it has one. */
	region?: string;
	/** A ready node serves its own region's users, whether or not global operations are available. */
	serving: "own-users" | "none";
	/** Operations that need the directory's origin (registration, moves, identity changes): not part of `ready`. */
	global: GlobalStatus;
	bus: "connected" | "disconnected" | "none";
	checks: Record<string, CheckState>;
}

/**
 * Ready = the launcher's start-up work is done, the broker started (so every service ran its
 * migrations) and is not draining, its bus connection is up, and the region's stores answer. A
 * region cut off from the directory's origin is still ready: `global` says what it cannot do.
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
	const ready = Object.values(checks).every(v => v === "ok");
	const region = runtime?.has("region") ? runtime.region.id : undefined;
	return {
		ready,
		...(region === undefined ? {} : { region }),
		serving: ready ? "own-users" : "none",
		global: globalProbeOf(broker)?.state.status ?? "unknown",
		bus: checks.transporter === undefined ? "none" : checks.transporter === "ok" ? "connected" : "disconnected",
		checks
	};
}
