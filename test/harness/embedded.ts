import type { BrokerOptions } from "moleculer";
import { ServiceBroker } from "moleculer";
import { attachRegionRuntime } from "../../regions/runtime/region-runtime.ts";
import type { RegionStores, StoreSettings } from "../../regions/stores/index.ts";
import { openRegionStores } from "../../regions/stores/index.ts";
import type { AnyServiceSchema } from "../../services/index.ts";

export interface StartedServices {
	broker: ServiceBroker;
	stores: RegionStores;
	stop(): Promise<void>;
}

/**
 * Starts services on a fresh broker with the region stores they need: an in-memory SQLite
 * store by default, or `stores` (e.g. the real servers from real-servers.ts).
 */
export async function startServices(schemas: AnyServiceSchema[], opts: { stores?: StoreSettings; broker?: BrokerOptions } = {}): Promise<StartedServices> {
	const stores = await openRegionStores(opts.stores ?? { sql: "sqlite::memory:", keyPrefix: "test:" });
	const broker = new ServiceBroker({ logger: false, ...opts.broker });
	attachRegionRuntime(broker, { stores });
	for (const schema of schemas) broker.createService(schema);
	await broker.start();
	return {
		broker,
		stores,
		async stop() {
			await broker.stop();
			await stores.close();
		}
	};
}
