import type { Context } from "moleculer";
import { openNatsKvDirectory } from "../../regions/directory/nats-kv-store.ts";
import { findRegion, loadRegions } from "../../regions/loader.ts";
import { startRegionNode } from "../../regions/node.ts";
import { blindIndexKeyFromEnv } from "../../regions/runtime/secrets.ts";
import type { AnyServiceSchema } from "../../services/index.ts";
import { benchEnv } from "./transport-server.ts";

/** The same no-op action twice: once plain, once home-routed, so the difference is the routing. */
export const profileSchema: AnyServiceSchema = {
	name: "profile",
	actions: {
		plain: { params: { userId: "string" }, handler: (ctx: Context) => ctx.params },
		homed: { home: { param: "userId", readonly: true }, params: { userId: "string" }, handler: (ctx: Context) => ctx.params }
	}
};

export interface RoutingNodeOptions {
	region: string;
	natsUrl: string;
	bucket: string;
	primary?: string;
	namespacePrefix: string;
	blindIndexKey: Buffer;
	schemas?: AnyServiceSchema[];
}

/** A region node as in production: NATS transport, the NATS KV directory, sv-region. */
export async function startRoutingNode(opts: RoutingNodeOptions) {
	const regions = loadRegions();
	const store = await openNatsKvDirectory({
		servers: opts.natsUrl,
		bucket: opts.bucket,
		...(opts.primary ? { cluster: opts.region, primaryCluster: opts.primary } : {})
	});
	const node = await startRegionNode({
		region: findRegion(regions, opts.region),
		regions,
		transport: "nats",
		group: "bench",
		services: ["sv-region"],
		schemas: opts.schemas,
		stores: { sql: "sqlite::memory:", keyPrefix: "bench:" },
		directory: { store, blindIndexKey: opts.blindIndexKey },
		env: benchEnv(opts.natsUrl, opts.namespacePrefix),
		overrides: { logger: false }
	});
	return {
		node,
		async stop() {
			await node.stop();
			await store.close();
		}
	};
}

// `node test/bench/routing-server.ts <region> <nats-url> <bucket> <namespace-prefix> [primary]` with
// EDGEHOME_BLIND_INDEX_KEY set: serves `profile`, prints "ready", stops when its stdin closes.
if (import.meta.main) {
	const [region, natsUrl, bucket, namespacePrefix, primary] = process.argv.slice(2);
	const blindIndexKey = blindIndexKeyFromEnv(process.env);
	if (!region || !natsUrl || !bucket || namespacePrefix === undefined || !blindIndexKey) {
		console.error("usage: EDGEHOME_BLIND_INDEX_KEY=… node test/bench/routing-server.ts <region> <nats-url> <bucket> <namespace-prefix> [primary]");
		process.exit(2);
	}
	const server = await startRoutingNode({ region, natsUrl, bucket, namespacePrefix, primary, blindIndexKey, schemas: [profileSchema] });
	process.stdin.once("end", () => {
		server.stop().then(
			() => process.exit(0),
			err => {
				console.error(`routing-server: stop failed: ${(err as Error).message}`);
				process.exit(1);
			}
		);
	});
	process.stdin.resume();
	process.stdout.write("ready\n");
}
