import type { MirrorWatchdogEvent } from "../../regions/directory/mirror-watchdog.ts";
import { mirrorEventLine } from "../../regions/directory/mirror-watchdog.ts";
import { openNatsKvDirectory } from "../../regions/directory/nats-kv-store.ts";
import { findRegion, loadRegions, RegionConfigError } from "../../regions/loader.ts";
import { checkNatsLogin, natsCredentials } from "../../regions/runtime/bus-credentials.ts";
import { EnvError, envInt, envString } from "../../regions/runtime/env.ts";
import { blindIndexKeyFromEnv } from "../../regions/runtime/secrets.ts";
import { startProcessTracing } from "../../regions/runtime/tracing/process-sdk.ts";
import { regionNamespace } from "../broker.config.ts";
import { startRegionNode, storeSettings, unknownServices } from "../node.ts";
import { launcherArgs } from "./args.ts";
import { waitForServer } from "./preflight.ts";
import { exitOnSignal, fail, isConfigError } from "./shutdown.ts";

/**
 * `npm run region -- --region <id> [--services a,b]`: one region, or one group of its
 * services, against the real NATS / MySQL / Redis. The entry point of the docker stacks.
 */
async function main(): Promise<void> {
	const args = launcherArgs({ region: { type: "string" }, services: { type: "string" } });
	if (!args.region) throw new RegionConfigError("--region", "id", "is required, e.g. --region cn-east");
	const regions = loadRegions();
	const region = findRegion(regions, args.region as string);
	const services = args.services
		? (args.services as string)
				.split(",")
				.map(s => s.trim())
				.filter(Boolean)
		: undefined;
	const unknown = unknownServices(services ?? []);
	if (unknown.length) throw new RegionConfigError("--services", "services", `unknown service(s): ${unknown.join(", ")}`);

	const env = process.env;
	const blindIndexKey = blindIndexKeyFromEnv(env);
	if (!blindIndexKey) throw new EnvError("EDGEHOME_BLIND_INDEX_KEY", "", "the directory's blind-index key (base64, ≥ 32 bytes), the same in every region");
	// The hub's JetStream domain holds the directory's origin; unset, the region's NATS holds it alone (one server, no mirror).
	const hubDomain = env.EDGEHOME_DIRECTORY_HUB || undefined;
	const placement = hubDomain
		? {
				domain: envString(env, "EDGEHOME_NATS_DOMAIN", region.id),
				originDomain: hubDomain,
				originReplicas: envInt(env, "EDGEHOME_DIRECTORY_REPLICAS", 3, 1, 5)
			}
		: {};
	const stores = storeSettings(region, "nats", env);
	const natsUrl = envString(env, "EDGEHOME_NATS_URL", region.endpoints.nats);
	// Checked before any connection: production mode refuses to start without the bus login and TLS.
	const credentials = natsCredentials(env);
	const retry = { attempts: envInt(env, "EDGEHOME_CONNECT_ATTEMPTS", 5, 1, 100), delayS: envInt(env, "EDGEHOME_CONNECT_RETRY_S", 2, 0, 60) };
	await waitForServer("NATS", natsUrl, retry);
	await checkNatsLogin(natsUrl, credentials);
	await waitForServer("MySQL", stores.sql, retry);
	if (stores.redis) await waitForServer("Redis", stores.redis, retry);

	const group = envString(env, "EDGEHOME_GROUP", services ? services.join("+") : "all");
	// Production directory: a JetStream KV bucket in the hub, mirrored into this region's own JetStream.
	let logMirror: ((e: MirrorWatchdogEvent) => void) | undefined;
	const store = await openNatsKvDirectory({
		servers: natsUrl,
		bucket: `${regionNamespace("edgehome-directory", env)}`,
		...placement,
		timeoutMs: envInt(env, "EDGEHOME_DIRECTORY_TIMEOUT_MS", 2000, 100),
		// Unset: 15–25 s, jittered so that of a region's nodes one repairs and the others see the mirror move.
		mirrorStallMs: env.EDGEHOME_DIRECTORY_MIRROR_STALL_MS ? envInt(env, "EDGEHOME_DIRECTORY_MIRROR_STALL_MS", 15_000, 1000, 600_000) : undefined,
		credentials,
		name: `${region.id}-${group}-${process.pid}-directory`,
		onMirrorEvent: e => logMirror?.(e)
	});
	// The process's one OTel SDK, before the broker that feeds it; its resource names this region.
	const tracing = startProcessTracing(env, { regions: [region.id], group });
	const node = await startRegionNode({ region, regions, transport: "nats", services, group, stores, directory: { store, blindIndexKey } }).catch(async err => {
		await store.close();
		await tracing?.stop();
		throw err;
	});
	logMirror = e => {
		const { warn, line } = mirrorEventLine(e);
		node.broker.logger[warn ? "warn" : "info"](line);
	};
	exitOnSignal(
		async () => {
			await node.stop();
			await store.close();
			await tracing?.stop();
		},
		m => node.broker.logger.info(m)
	);
	const ops = env.EDGEHOME_METRICS_PORT === "off" ? "off" : `port ${envInt(env, "EDGEHOME_METRICS_PORT", region.ports.metrics, 1, 65535)}`;
	node.broker.logger.info(`region ${region.id} group ${group} ready; ops endpoint: ${ops}`);
}

main().catch(err => fail(err instanceof Error ? err.message : String(err), isConfigError(err) ? 2 : 1));
