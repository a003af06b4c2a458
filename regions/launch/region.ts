import { findRegion, loadRegions, RegionConfigError } from "../loader.ts";
import { startRegionNode, storeSettings, unknownServices } from "../node.ts";
import { envInt, envString } from "../runtime/env.ts";
import { launcherArgs } from "./args.ts";
import { waitForServer } from "./preflight.ts";
import { exitOnSignal, fail } from "./shutdown.ts";

/**
 * `npm run region -- --region <id> [--services a,b]`: one region, or one group of its
 * services, against the real NATS / MySQL / Redis. The entry point of the docker stacks.
 */
async function main(): Promise<void> {
	const args = launcherArgs({ region: { type: "string" }, services: { type: "string" } });
	if (!args.region) throw new RegionConfigError("--region", "id", "is required, e.g. --region cn-east");
	const region = findRegion(loadRegions(), args.region as string);
	const services = args.services ? (args.services as string).split(",").map(s => s.trim()).filter(Boolean) : undefined;
	const unknown = unknownServices(services ?? []);
	if (unknown.length) throw new RegionConfigError("--services", "services", `unknown service(s): ${unknown.join(", ")}`);

	const env = process.env;
	const stores = storeSettings(region, "nats", env);
	const retry = { attempts: envInt(env, "EDGEHOME_CONNECT_ATTEMPTS", 5, 1, 100), delayS: envInt(env, "EDGEHOME_CONNECT_RETRY_S", 2, 0, 60) };
	await waitForServer("NATS", envString(env, "EDGEHOME_NATS_URL", region.endpoints.nats), retry);
	await waitForServer("MySQL", stores.sql, retry);
	if (stores.redis) await waitForServer("Redis", stores.redis, retry);

	const group = envString(env, "EDGEHOME_GROUP", services ? services.join("+") : "all");
	const node = await startRegionNode({ region, transport: "nats", services, group, stores });
	exitOnSignal(node.stop, m => node.broker.logger.info(m));
	node.broker.logger.info(`region ${region.id} group ${group} ready: ops on http://127.0.0.1:${region.ports.metrics}`);
}

main().catch(err => fail(err instanceof Error ? err.message : String(err), err instanceof RegionConfigError ? 2 : 1));
