/**
 * A region node process to be killed mid-move: a KV region node (the run's bucket, namespace
 * prefix, blind-index key, MariaDB stores) with sv-region + notes. Prints "ready" once it sees
 * the notes service in every region; then a stdin line "move <userId> <to>" starts
 * `sv-region.move` here, its end printed as "moved …" or "move-failed …".
 *
 * Env: MOVER_NODE_REGION, MOVER_NODE_NATS_URL, MOVER_NODE_BUCKET, MOVER_NODE_HUB_REPLICAS, MOVER_NODE_RUN
 * (for realStores), EDGEHOME_NAMESPACE_PREFIX, EDGEHOME_BLIND_INDEX_KEY (base64),
 * EDGEHOME_MOVE_SETTLE_MS, and MOVER_HOLD to freeze the move at one directory write so that a
 * kill lands exactly there (holding-store.ts). It prints "held <MOVER_HOLD>" when frozen.
 */
import { createInterface } from "node:readline";
import { startRegionNode } from "../../app/node.ts";
import { mirrorEventLine } from "../../regions/directory/mirror-watchdog.ts";
import { findRegion, loadRegions } from "../../regions/loader.ts";
import type { MoveHold } from "./holding-store.ts";
import { holdingStore } from "./holding-store.ts";
import { openKvDirectory } from "./kv-node.ts";
import { notesService } from "./notes.service.ts";
import { realStores } from "./real-servers.ts";

const need = (name: string): string => {
	const value = process.env[name];
	if (!value) throw new Error(`mover-node: ${name} is not set`);
	return value;
};
const say = (line: string) => process.stdout.write(`${line}\n`);

const regionId = need("MOVER_NODE_REGION");
const natsUrl = need("MOVER_NODE_NATS_URL");
const hold = process.env.MOVER_HOLD as MoveHold | undefined;
const blindIndexKey = Buffer.from(need("EDGEHOME_BLIND_INDEX_KEY"), "base64");
const regions = loadRegions();

// The parent holds stdin: when it goes away, so does this node (no orphan after a crashed test run).
const lines = createInterface({ input: process.stdin });
lines.on("close", () => process.exit(0));

const store = await openKvDirectory({
	region: regionId,
	natsUrl,
	bucket: need("MOVER_NODE_BUCKET"),
	hubReplicas: Number(need("MOVER_NODE_HUB_REPLICAS")),
	namespacePrefix: need("EDGEHOME_NAMESPACE_PREFIX"),
	blindIndexKey,
	// On the test's failure message: a mirror behind or made anew explains a surprising answer.
	onMirrorEvent: e => say(`mirror ${mirrorEventLine(e).line}`)
});
const node = await startRegionNode({
	region: findRegion(regions, regionId),
	regions,
	transport: "nats",
	group: "mover",
	services: ["sv-region"],
	schemas: [notesService],
	stores: realStores(need("MOVER_NODE_RUN"), regionId),
	directory: { store: holdingStore(store, hold, () => say(`held ${hold}`)), blindIndexKey },
	env: { ...process.env, EDGEHOME_NATS_URL: natsUrl, EDGEHOME_METRICS_PORT: "off", EDGEHOME_CACHER: "off" },
	overrides: { logger: false }
});
// The mover finds participants in each region's registry: a link that has not discovered them yet would copy nothing.
for (const r of regions) if (r.id !== regionId) await (await node.links.broker(r.id)).waitForServices(["notes", "sv-region"], 15_000);
say(`ready ${node.broker.nodeID}`);

lines.on("line", line => {
	const [command, userId, to] = line.trim().split(/\s+/);
	if (command !== "move") return say(`unknown command: ${line}`);
	// Not awaited: stdin stays read while the move runs (or hangs at a hold).
	node.broker.call("sv-region.move", { userId, to }, { timeout: 60_000 }).then(
		res => say(`moved ${JSON.stringify(res)}`),
		(err: { type?: string; message?: string }) => say(`move-failed ${err.type ?? "ERROR"} ${err.message ?? ""}`)
	);
});
