/**
 * A region node in its own process, so that a test can SIGKILL it (no DISCONNECT packet, as in a
 * crash): a KV region node running sv-region + notes on in-memory SQLite (or the SQLite file of
 * NOTES_NODE_SQL, `sqlite:<file>`, which outlives a restart). Prints "ready <nodeID>" once started.
 *
 * Env: NOTES_NODE_REGION, NOTES_NODE_NATS_URL, NOTES_NODE_BUCKET, NOTES_NODE_HUB_REPLICAS,
 * EDGEHOME_NAMESPACE_PREFIX, EDGEHOME_BLIND_INDEX_KEY (base64); every other EDGEHOME_* variable
 * (heartbeats, timeouts) is passed on to the node.
 */
import { createInterface } from "node:readline";
import { startKvNode } from "./kv-node.ts";
import { notesService } from "./notes.service.ts";

const need = (name: string): string => {
	const value = process.env[name];
	if (!value) throw new Error(`notes-node: ${name} is not set`);
	return value;
};

// The parent holds stdin: when it goes away, so does this node (no orphan after a crashed test run).
createInterface({ input: process.stdin }).on("close", () => process.exit(0));

const env: Record<string, string> = {};
for (const [name, value] of Object.entries(process.env)) if (name.startsWith("EDGEHOME_") && value !== undefined) env[name] = value;

const { node } = await startKvNode({
	region: need("NOTES_NODE_REGION"),
	natsUrl: need("NOTES_NODE_NATS_URL"),
	bucket: need("NOTES_NODE_BUCKET"),
	hubReplicas: Number(need("NOTES_NODE_HUB_REPLICAS")),
	namespacePrefix: need("EDGEHOME_NAMESPACE_PREFIX"),
	blindIndexKey: Buffer.from(need("EDGEHOME_BLIND_INDEX_KEY"), "base64"),
	services: ["sv-region"],
	schemas: [notesService],
	group: "notes",
	...(process.env.NOTES_NODE_SQL ? { stores: { sql: process.env.NOTES_NODE_SQL, keyPrefix: `${need("NOTES_NODE_REGION")}:` } } : {}),
	env
});
process.stdout.write(`ready ${node.broker.nodeID}\n`);
