import type { ServiceBroker } from "moleculer";
import type { HomeDirectory } from "../directory/home-directory.ts";
import type { RoutingStats } from "../home-router.ts";
import type { RegionLinks } from "../links.ts";
import type { OwnershipRecords } from "../ownership/records.ts";
import type { RegionDefinition } from "../region.ts";
import type { RegionHealth } from "../region-health.ts";

/** What the region runtime hands to sv-region: the one service that knows about regions. */
export interface RegionRuntime {
	region: RegionDefinition;
	regions: RegionDefinition[];
	directory: HomeDirectory;
	links: RegionLinks;
	health: RegionHealth;
	routing: RoutingStats;
	/** This region's ownership rows, which a move's handover steps change. */
	ownership: OwnershipRecords;
	/** The services a move copies, as the deployment declares them (regions/move-participants.ts). */
	moveParticipants: () => Promise<string[]>;
}

const runtimes = new WeakMap<ServiceBroker, RegionRuntime>();

export function attachRegionRuntime(broker: ServiceBroker, runtime: RegionRuntime): void {
	runtimes.set(broker, runtime);
}

export function regionRuntimeOf(broker: ServiceBroker): RegionRuntime {
	const rt = runtimes.get(broker);
	if (!rt) throw new Error(`broker ${broker.nodeID} runs outside a region node (no region runtime attached)`);
	return rt;
}
