import type { ServiceBroker } from "moleculer";
import { hasStores, storesOf } from "../stores/index.ts";

export interface Readiness {
	ready: boolean;
	checks: Record<string, "ok" | string>;
}

/**
 * Ready = the broker started (so every service ran its migrations), is not draining,
 * its transporter is connected, and the region's stores answer.
 */
export async function readiness(broker: ServiceBroker): Promise<Readiness> {
	const checks: Readiness["checks"] = {};
	checks.broker = broker.stopping ? "stopping" : broker.started ? "ok" : "starting";
	if (broker.transit) checks.transporter = broker.transit.connected ? "ok" : "disconnected";
	if (hasStores(broker)) {
		checks.stores = await storesOf(broker)
			.ping()
			.then(() => "ok")
			.catch((err: Error) => err.message);
	}
	return { ready: Object.values(checks).every(v => v === "ok"), checks };
}
