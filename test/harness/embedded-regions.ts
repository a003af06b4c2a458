import { randomBytes } from "node:crypto";
import type { RegionNode } from "../../app/node.ts";
import { startRegionNode } from "../../app/node.ts";
import { openSqliteDirectory } from "../../regions/directory/sqlite-store.ts";
import type { DirectoryStore } from "../../regions/directory/store.ts";
import { loadRegions } from "../../regions/loader.ts";
import { regionRuntimeOf } from "../../regions/runtime/region-runtime.ts";
import { startProcessTracing } from "../../regions/runtime/tracing/process-sdk.ts";
import type { AnyServiceSchema } from "../../services/index.ts";
import { within } from "./waiting.ts";

export const REGION_IDS = ["cn-east", "ap-south", "eu-central"] as const;

export interface EmbeddedRegions {
	nodes: Record<string, RegionNode>;
	/** The one directory every region shares, as they share the global one. */
	store: DirectoryStore;
	stop(): Promise<void>;
}

/**
 * Every shipped region in this process over the in-process transporter, each with an in-memory store;
 * traced, as `npm start` is, when `env` names a collector (this process's tracing, stopped with them).
 */
export async function startEmbeddedRegions(opts: {
	namespacePrefix: string;
	services: string[];
	schemas?: AnyServiceSchema[];
	/** How one region sees the shared directory (a stalled mirror, say); the store itself by default. */
	viewOf?: (regionId: string, store: DirectoryStore) => DirectoryStore;
	env?: Record<string, string>;
	/** Each region's SQL store URL (a MariaDB database, say); an in-memory SQLite one by default. */
	sqlOf?: (regionId: string) => string;
}): Promise<EmbeddedRegions> {
	const regions = loadRegions();
	const store = await openSqliteDirectory(":memory:");
	const blindIndexKey = randomBytes(32);
	const env = { EDGEHOME_NAMESPACE_PREFIX: opts.namespacePrefix, EDGEHOME_METRICS_PORT: "off", ...opts.env };
	const tracing = startProcessTracing(env, { regions: [...REGION_IDS], group: "all" });
	const nodes: Record<string, RegionNode> = {};
	const stop = async () => {
		for (const n of Object.values(nodes)) await n.stop();
		await store.close();
		await tracing?.stop();
	};
	try {
		for (const id of REGION_IDS)
			nodes[id] = await startRegionNode({
				region: regions.find(r => r.id === id)!,
				regions,
				transport: "embedded",
				services: opts.services,
				schemas: opts.schemas,
				stores: { sql: opts.sqlOf?.(id) ?? "sqlite::memory:", keyPrefix: `${id}:` },
				directory: { store: opts.viewOf?.(id, store) ?? store, blindIndexKey },
				env,
				overrides: { logger: false }
			});
	} catch (err) {
		await stop();
		throw err;
	}
	return { nodes, store, stop };
}

/** Waits until auth-jwt on every region's node has heard every region's revocation feed once (tokens verify everywhere). */
export async function everyFeedHeard(cluster: EmbeddedRegions, timeoutMs: number): Promise<void> {
	const stats = () => Promise.all(REGION_IDS.map(r => cluster.nodes[r]!.broker.call<{ current: Record<string, boolean> }, unknown>("auth-jwt.stats", {})));
	await within(async () => (await stats()).every(s => Object.values(s.current).every(Boolean)), timeoutMs);
}

/**
 * Waits until every region's node has reached every other region through its link (its probes say
 * "up"): before that, a call routed to another region answers REGION_UNAVAILABLE, and a
 * registration whose profile goes to another region may leave its username reserved.
 */
export async function everyRegionLinked(cluster: EmbeddedRegions, timeoutMs: number): Promise<void> {
	await within(() => REGION_IDS.every(a => REGION_IDS.every(b => a === b || regionRuntimeOf(cluster.nodes[a]!.broker).health.status(b) === "up")), timeoutMs);
}
