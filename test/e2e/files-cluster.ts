import type { EmbeddedRegions } from "../harness/embedded-regions.ts";
import type { gatewaySchemas } from "../harness/gateways.ts";

/** The three embedded regions with what the file routes need behind their gateways, each region's feed heard and every link up. */
export async function startFilesCluster(namespacePrefix: string, schemas: ReturnType<typeof gatewaySchemas>): Promise<EmbeddedRegions> {
	// Imported here: the specs set the file limits in the environment first, and the services read them as they load.
	const { startEmbeddedRegions, everyFeedHeard, everyRegionLinked } = await import("../harness/embedded-regions.ts");
	const cluster = await startEmbeddedRegions({ namespacePrefix, services: ["sv-region", "sv-user", "auth-jwt", "auth-rbac", "sv-oss"], schemas });
	await everyFeedHeard(cluster, 10_000);
	await everyRegionLinked(cluster, 10_000);
	return cluster;
}
