import { randomBytes } from "node:crypto";
import { join } from "node:path";
import type { BrokerOptions } from "moleculer";
import { ServiceBroker } from "moleculer";
import { CHANNELS_SERVICE, openRegionChannels } from "../mixins/channels/index.ts";
import { Channels } from "../mixins/channels.mixin.ts";
import { HomeDirectory } from "../regions/directory/home-directory.ts";
import { openSqliteDirectory } from "../regions/directory/sqlite-store.ts";
import type { DirectoryStore } from "../regions/directory/store.ts";
import { fromDirectoryFailure } from "../regions/errors.ts";
import { GlobalEvents } from "../regions/global-events.ts";
import { homeAnnouncements } from "../regions/home-announcements.ts";
import { HomeRouter, newRoutingStats } from "../regions/home-router.ts";
import { RegionLinks } from "../regions/links.ts";
import { loadRegions } from "../regions/loader.ts";
import { declaredParticipants, declareParticipants, participantsAmong } from "../regions/move-participants.ts";
import { NodeLiveness } from "../regions/node-liveness.ts";
import { WriteFence } from "../regions/ownership/fence.ts";
import { OWNERSHIP_MIGRATIONS, OwnershipRecords } from "../regions/ownership/records.ts";
import type { RegionDefinition } from "../regions/region.ts";
import { RegionHealth } from "../regions/region-health.ts";
import type { Env } from "../regions/runtime/env.ts";
import { envInt, envString } from "../regions/runtime/env.ts";
import { GlobalProbe } from "../regions/runtime/global-probe.ts";
import { METRIC } from "../regions/runtime/metric-names.ts";
import { attachRegionRuntime } from "../regions/runtime/region-runtime.ts";
import { restrictedCallsAmong } from "../regions/runtime/restricted-calls.ts";
import type { RegionStores, StoreSettings } from "../regions/stores/index.ts";
import { migrate, openRegionStores } from "../regions/stores/index.ts";
import { UserChanges } from "../regions/user-changes.ts";
import type { AnyServiceSchema } from "../services/index.ts";
import { SERVICES } from "../services/index.ts";
import type { Transport } from "./broker.config.ts";
import { brokerConfig, regionNamespace } from "./broker.config.ts";

export interface RegionNodeOptions {
	region: RegionDefinition;
	/** Every region (assignment, routing); the shipped definitions when absent. */
	regions?: RegionDefinition[];
	transport: Transport;
	/** Names from services/index.ts; all of them when absent. */
	services?: string[];
	/** Extra schemas (tests start services that are not in the registry). */
	schemas?: AnyServiceSchema[];
	/** Names the process group in the nodeID, e.g. "all" or "core". */
	group?: string;
	stores: StoreSettings;
	/**
	 * The global directory, shared by every node (NATS KV, or one SQLite store embedded); with
	 * `blindIndexKey`, the same for every node. Absent: a private in-memory one (single-node tests).
	 */
	directory?: { store: DirectoryStore; blindIndexKey: Buffer };
	env?: Env;
	/** Applied last: tests silence the logger or turn metrics off. */
	overrides?: Partial<BrokerOptions>;
}

/** One running node of a region: its broker, stores and links, stopped together. */
export interface RegionNode {
	readonly region: RegionDefinition;
	readonly broker: ServiceBroker;
	readonly stores: RegionStores;
	readonly links: RegionLinks;
	readonly directory: HomeDirectory;
	readonly health: RegionHealth;
	stop(): Promise<void>;
}

/** Where a region's stores are: SQLite + memory embedded, MySQL + Redis from the region file or env otherwise. */
export function storeSettings(
	region: RegionDefinition,
	transport: Transport,
	env: Env = process.env,
	embedded: { dataDir?: string; memory?: boolean } = {}
): StoreSettings {
	const keyPrefix = `${envString(env, "EDGEHOME_KEY_PREFIX", "edgehome")}:${region.id}:`;
	if (transport === "embedded") {
		const file = embedded.memory ? ":memory:" : join(embedded.dataDir ?? "data", `${region.id}.sqlite`);
		return { sql: `sqlite:${file}`, keyPrefix };
	}
	return {
		sql: envString(env, "EDGEHOME_MYSQL_URL", region.endpoints.mysql),
		redis: envString(env, "EDGEHOME_REDIS_URL", region.endpoints.redis),
		keyPrefix
	};
}

export function unknownServices(names: string[]): string[] {
	return names.filter(n => !(n in SERVICES));
}

export async function startRegionNode(opts: RegionNodeOptions): Promise<RegionNode> {
	const env = opts.env ?? process.env;
	const group = opts.group ?? "all";
	const names = opts.services ?? Object.keys(SERVICES);
	const unknown = unknownServices(names);
	if (unknown.length) throw new Error(`unknown service(s): ${unknown.join(", ")}; known: ${Object.keys(SERVICES).join(", ")}`);

	const regions = opts.regions ?? loadRegions();
	const ownDirectory = opts.directory ? undefined : await openSqliteDirectory(":memory:");
	// Made below, once the directory it probes exists.
	let globalProbe: GlobalProbe | undefined;
	const directory = new HomeDirectory({
		originAvailable: () => globalProbe?.state.status === "available",
		store: opts.directory?.store ?? ownDirectory!,
		regions: regions.map(r => r.id),
		blindIndexKey: opts.directory?.blindIndexKey ?? randomBytes(32),
		cacheSize: envInt(env, "EDGEHOME_HOME_CACHE_SIZE", 100_000, 1)
	});
	const stores = await openRegionStores(opts.stores);
	const ownership = new OwnershipRecords(stores.sql);
	try {
		await migrate(stores.sql.db, "edgehome-ownership", OWNERSHIP_MIGRATIONS);
	} catch (err) {
		await stores.close();
		await ownDirectory?.close();
		throw err;
	}
	const base: BrokerOptions = { ...brokerConfig({ region: opts.region, group, transport: opts.transport, env }), ...opts.overrides };
	const nodeID = base.nodeID!;
	const links = new RegionLinks(target => ({
		...base,
		namespace: regionNamespace(target, env),
		nodeID: `${nodeID}-link-${target}`,
		cacher: null,
		metrics: false,
		// A link takes none of the node's middlewares but the signing of restricted calls.
		middlewares: restrictedCallsAmong(base.middlewares ?? [])
	}));
	let onRegionChange: (region: string, up: boolean, reason?: string) => void = () => undefined;
	const health = new RegionHealth({
		self: opts.region.id,
		regions: regions.map(r => r.id),
		links,
		intervalMs: envInt(env, "EDGEHOME_REGION_PROBE_MS", 300, 50),
		probeTimeoutMs: envInt(env, "EDGEHOME_REGION_PROBE_TIMEOUT_MS", 600, 50),
		onChange: (region, state) => onRegionChange(region, state.status === "up", state.reason)
	});
	const routing = newRoutingStats();
	const fence = new WriteFence({
		region: opts.region.id,
		records: ownership,
		authoritative: userId => directory.entry(userId).then(e => e?.value, fromDirectoryFailure),
		movingWaitMs: envInt(env, "EDGEHOME_MOVING_WAIT_MS", 1000, 0, 60_000)
	});
	globalProbe = new GlobalProbe({
		store: directory.store,
		intervalMs: envInt(env, "EDGEHOME_GLOBAL_PROBE_MS", 1000, 50),
		timeoutMs: envInt(env, "EDGEHOME_GLOBAL_PROBE_TIMEOUT_MS", 2000, 50)
	});
	const channels = await openRegionChannels({
		transport: opts.transport,
		natsUrl: envString(env, "EDGEHOME_NATS_URL", opts.region.endpoints.nats),
		namespace: base.namespace!,
		sql: opts.stores.sql,
		env,
		nodeID
	});
	const broker = new ServiceBroker({
		...base,
		middlewares: [
			...(base.middlewares ?? []),
			Channels({ store: channels, known: [...Object.values(SERVICES), ...(opts.schemas ?? [])] }),
			globalProbe.middleware(),
			NodeLiveness(),
			HomeRouter({ region: opts.region.id, directory, links, health, stats: routing, fence }),
			// After the router: its hook wraps the fence's, so a write is announced once it committed.
			UserChanges(),
			GlobalEvents({ region: opts.region.id, regions: regions.map(r => r.id), links, health })
		]
	});
	onRegionChange = (region, up, reason) => {
		if (up) broker.logger.info(`region ${region} is reachable`);
		else broker.logger.warn(`region ${region} is unreachable: ${reason ?? "unknown"}`);
		if (broker.isMetricsEnabled()) broker.metrics.set(METRIC.regionReachable, up ? 1 : 0, { peer: region });
	};
	let directoryGauges: NodeJS.Timeout | undefined;
	if (broker.isMetricsEnabled()) {
		for (const peer of regions.map(r => r.id).filter(id => id !== opts.region.id)) broker.metrics.increment(METRIC.routingForwards, { to: peer }, 0);
		const counts = {
			[METRIC.directoryLookups]: () => directory.lookups,
			[METRIC.directoryCacheHits]: () => directory.cache.hits,
			[METRIC.directoryCacheMisses]: () => directory.cache.misses,
			[METRIC.directoryCacheEntries]: () => directory.cache.size
		};
		// The cache counts in plain fields on the hot path; the metrics copy them now and then.
		directoryGauges = setInterval(() => {
			for (const [name, read] of Object.entries(counts)) broker.metrics.set(name, read());
		}, 2000);
		directoryGauges.unref();
	}
	const moveParticipants = declaredParticipants(directory.store, env);
	attachRegionRuntime(broker, { region: opts.region, regions, links, stores, directory, health, routing, ownership, fence, moveParticipants });
	broker.createService(homeAnnouncements(directory));
	broker.createService(CHANNELS_SERVICE);
	for (const name of names) broker.createService(SERVICES[name]!);
	for (const schema of opts.schemas ?? []) broker.createService(schema);

	let stopping = false;
	const stop = async () => {
		stopping = true;
		clearInterval(directoryGauges);
		health.stop();
		await broker.stop();
		await channels.close();
		await links.stop();
		await directory.stop();
		await ownDirectory?.close();
		await stores.close();
	};
	try {
		await directory.start();
		await broker.start();
		health.start();
		const runs = participantsAmong([...names.map(n => SERVICES[n]!), ...(opts.schemas ?? [])]);
		void declareParticipants(directory.store, runs, broker.logger, () => stopping);
	} catch (err) {
		await stop().catch(() => undefined);
		throw err;
	}
	return { region: opts.region, broker, stores, links, directory, health, stop };
}
