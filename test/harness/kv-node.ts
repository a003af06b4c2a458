import type { RegionNode } from "../../app/node.ts";
import { startRegionNode } from "../../app/node.ts";
import type { MirrorWatchdogEvent } from "../../regions/directory/mirror-watchdog.ts";
import type { NatsKvDirectoryStore } from "../../regions/directory/nats-kv-store.ts";
import { openNatsKvDirectory } from "../../regions/directory/nats-kv-store.ts";
import { findRegion, loadRegions } from "../../regions/loader.ts";
import { natsCredentials } from "../../regions/runtime/bus-credentials.ts";
import type { StoreSettings } from "../../regions/stores/index.ts";
import type { AnyServiceSchema } from "../../services/index.ts";
import { whileDirectoryUnavailable } from "./directory-retry.ts";
import { HUB_DOMAIN } from "./edge-topology.ts";

export interface KvNodeOptions {
	region: string;
	natsUrl: string;
	/** The run's directory bucket, shared by every node. */
	bucket: string;
	/** Replicas of the origin bucket in the hub (edge-topology.ts); absent on a single NATS server (origin there, no mirror). */
	hubReplicas?: number;
	namespacePrefix: string;
	blindIndexKey: Buffer;
	services?: string[];
	schemas?: AnyServiceSchema[];
	stores?: StoreSettings;
	env?: Record<string, string>;
	/** Names the node (`<region>-<group>-<pid>`): two nodes of one region in one process need two. */
	group?: string;
	/** Hears what the directory mirror's watchdog sees. */
	onMirrorEvent?: (event: MirrorWatchdogEvent) => void;
}

export interface KvNode {
	node: RegionNode;
	store: NatsKvDirectoryStore;
	stop(): Promise<void>;
}

/** Opens the directory, waiting out a JetStream that is still electing its leader (bounded). */
export function openKvDirectory(opts: KvNodeOptions): Promise<NatsKvDirectoryStore> {
	return whileDirectoryUnavailable(() =>
		openNatsKvDirectory({
			servers: opts.natsUrl,
			bucket: opts.bucket,
			credentials: natsCredentials(opts.env ?? {}),
			onMirrorEvent: opts.onMirrorEvent,
			...(opts.hubReplicas ? { domain: opts.region, originDomain: HUB_DOMAIN, originReplicas: opts.hubReplicas } : {})
		})
	);
}

/** A region node as in production: NATS transport, the NATS KV directory, sv-region; silent, no metrics or cache. */
export async function startKvNode(opts: KvNodeOptions): Promise<KvNode> {
	const regions = loadRegions();
	const store = await openKvDirectory(opts);
	try {
		const node = await startRegionNode({
			region: findRegion(regions, opts.region),
			regions,
			transport: "nats",
			group: opts.group ?? "test",
			services: opts.services ?? ["sv-region"],
			schemas: opts.schemas,
			stores: opts.stores ?? { sql: "sqlite::memory:", keyPrefix: `${opts.region}:` },
			directory: { store, blindIndexKey: opts.blindIndexKey },
			env: {
				EDGEHOME_NATS_URL: opts.natsUrl,
				EDGEHOME_NAMESPACE_PREFIX: opts.namespacePrefix,
				EDGEHOME_METRICS_PORT: "off",
				EDGEHOME_CACHER: "off",
				...opts.env
			},
			overrides: { logger: false }
		});
		return {
			node,
			store,
			async stop() {
				await node.stop();
				await store.close();
			}
		};
	} catch (err) {
		await store.close();
		throw err;
	}
}
