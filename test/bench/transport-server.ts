import type { BrokerOptions, Context } from "moleculer";
import { ServiceBroker } from "moleculer";
import type { Transport } from "../../app/broker.config.ts";
import { brokerConfig } from "../../app/broker.config.ts";
import { findRegion, loadRegions } from "../../regions/loader.ts";
import type { Env } from "../../regions/runtime/env.ts";
import type { AnyServiceSchema } from "../../services/index.ts";
import { serveUntilStdinEnds } from "./measure.ts";

/** The benchmarked action does no work, so the figures are the call path's. */
export const echoSchema: AnyServiceSchema = {
	name: "echo",
	actions: {
		echo: (ctx: Context) => ctx.params
	}
};

/** A bench broker's environment: the project's defaults, without metrics and the cache. */
export function benchEnv(natsUrl?: string, namespacePrefix?: string): Env {
	return {
		EDGEHOME_NATS_URL: natsUrl,
		EDGEHOME_NAMESPACE_PREFIX: namespacePrefix,
		EDGEHOME_METRICS_PORT: "off",
		EDGEHOME_CACHER: "off"
	};
}

/**
 * The project's broker configuration for `regionId`, silent. Plain brokers rather than region
 * nodes: every case then runs the same call path and differs only in how the call travels.
 */
export function benchBrokerOptions(regionId: string, transport: Transport, env: Env): BrokerOptions {
	return { ...brokerConfig({ region: findRegion(loadRegions(), regionId), group: "bench", transport, env }), logger: false };
}

// `node test/bench/transport-server.ts <region> <nats-url> [namespace-prefix]`: serves `echo` over NATS,
// prints "ready" once started, and stops when its stdin closes (the bench is done or gone).
if (import.meta.main) {
	const [region, natsUrl, namespacePrefix] = process.argv.slice(2);
	if (!region || !natsUrl) {
		console.error("usage: node test/bench/transport-server.ts <region> <nats-url> [namespace-prefix]");
		process.exit(2);
	}
	const broker = new ServiceBroker(benchBrokerOptions(region, "nats", benchEnv(natsUrl, namespacePrefix)));
	broker.createService(echoSchema);
	await broker.start();
	serveUntilStdinEnds("transport-server", () => broker.stop());
}
