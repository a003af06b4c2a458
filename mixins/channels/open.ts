import { natsCredentials } from "../../regions/runtime/bus-credentials.ts";
import type { Env } from "../../regions/runtime/env.ts";
import { openJetStreamChannels } from "./jetstream-store.ts";
import { openSqliteChannels } from "./sqlite-store.ts";
import type { ChannelStore } from "./store.ts";

export interface RegionChannelSettings {
	transport: "embedded" | "nats";
	/** The node's NATS URL, as its transporter uses it. */
	natsUrl: string;
	/** The region's Moleculer namespace. */
	namespace: string;
	/** The region's SQL store URL (`sqlite:<file>` embedded): the channels file goes beside it. */
	sql: string;
	env: Env;
	nodeID: string;
}

/**
 * A region node's channel store: the region's JetStream with the node's bus login (and its
 * JetStream domain, EDGEHOME_NATS_DOMAIN, when the region has one), or `<region>.channels.sqlite`
 * beside the region's SQLite file embedded (in memory when the region's store is, or is not a
 * SQLite file at all: an embedded test on MariaDB).
 */
export async function openRegionChannels(s: RegionChannelSettings): Promise<ChannelStore> {
	if (s.transport === "nats")
		return openJetStreamChannels({
			servers: s.natsUrl,
			namespace: s.namespace,
			domain: s.env.EDGEHOME_NATS_DOMAIN || undefined,
			credentials: natsCredentials(s.env),
			name: `${s.nodeID}-channels`
		});
	const file = s.sql.startsWith("sqlite:") ? s.sql.slice("sqlite:".length) : ":memory:";
	return openSqliteChannels(file === ":memory:" || file === "" ? ":memory:" : `${file.replace(/\.sqlite$/, "")}.channels.sqlite`);
}
