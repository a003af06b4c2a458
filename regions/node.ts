import { join } from "node:path";
import { ServiceBroker } from "moleculer";
import type { BrokerOptions } from "moleculer";
import { brokerConfig, regionNamespace } from "../broker.config.ts";
import type { Transport } from "../broker.config.ts";
import { SERVICES } from "../services/index.ts";
import type { AnyServiceSchema } from "../services/index.ts";
import { attachLinks, RegionLinks } from "./links.ts";
import type { RegionDefinition } from "./region.ts";
import { envString } from "./runtime/env.ts";
import type { Env } from "./runtime/env.ts";
import { attachStores, openRegionStores } from "./stores/index.ts";
import type { RegionStores, StoreSettings } from "./stores/index.ts";

export interface RegionNodeOptions {
	region: RegionDefinition;
	transport: Transport;
	/** Names from services/index.ts; all of them when absent. */
	services?: string[];
	/** Extra schemas (tests start services that are not in the registry). */
	schemas?: AnyServiceSchema[];
	/** Names the process group in the nodeID, e.g. "all" or "core". */
	group?: string;
	stores: StoreSettings;
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

	const stores = await openRegionStores(opts.stores);
	const options: BrokerOptions = { ...brokerConfig({ region: opts.region, group, transport: opts.transport, env }), ...opts.overrides };
	const broker = new ServiceBroker(options);
	const links = new RegionLinks(target => ({
		...options,
		namespace: regionNamespace(target, env),
		nodeID: `${broker.nodeID}-link-${target}`,
		cacher: null,
		metrics: false,
		middlewares: []
	}));
	attachStores(broker, stores);
	attachLinks(broker, links);
	for (const name of names) broker.createService(SERVICES[name]!);
	for (const schema of opts.schemas ?? []) broker.createService(schema);

	const stop = async () => {
		await broker.stop();
		await links.stop();
		await stores.close();
	};
	try {
		await broker.start();
	} catch (err) {
		await stop().catch(() => undefined);
		throw err;
	}
	return { region: opts.region, broker, stores, links, stop };
}
