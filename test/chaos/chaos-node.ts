/**
 * One region node of the chaos test, in its own process so that a nemesis can SIGKILL it: the
 * run's KV directory, its region's MariaDB database, sv-region, and (role "svc") the ledger
 * participant; role "aux" is a second node of the region without it (the half-dead case).
 *
 * Commands arrive on stdin, one JSON object a line: `{ id, action, params, timeout? }`, called on
 * this node's broker (home-routed calls are routed from here; `sv-region.move` runs here). Answers
 * go to fd 3 (stdout carries the product's logs): `@ready <nodeID>` once started, then one
 * `@res {id, ok, res | type, code, message}` per command.
 *
 * Env: CHAOS_REGION, CHAOS_ROLE (svc | aux), CHAOS_NATS_URL, CHAOS_BUCKET, CHAOS_HUB_REPLICAS, CHAOS_RUN
 * (for realStores), CHAOS_NODE_ID, CHAOS_DISCOVERY_WAIT_MS (default 10000), EDGEHOME_NAMESPACE_PREFIX,
 * EDGEHOME_BLIND_INDEX_KEY (base64), CHAOS_SERVICES: registry services (e.g. sv-money) every node runs
 * besides sv-region, in place of the ledger (the bank test).
 */
import { Socket } from "node:net";
import { createInterface } from "node:readline";
import { startRegionNode } from "../../app/node.ts";
import { findRegion, loadRegions } from "../../regions/loader.ts";
import { openKvDirectory } from "../harness/kv-node.ts";
import { realStores } from "../harness/real-servers.ts";
import { ledgerService } from "./ledger.service.ts";

const need = (name: string): string => {
	const value = process.env[name];
	if (!value) throw new Error(`chaos-node: ${name} is not set`);
	return value;
};

const out = new Socket({ fd: 3, readable: false, writable: true });
const say = (line: string) => out.write(`${line}\n`);

// The parent holds stdin: when it goes away, so does this node (no orphan after a crashed run).
const lines = createInterface({ input: process.stdin });
lines.on("close", () => process.exit(0));

const regionId = need("CHAOS_REGION");
const role = need("CHAOS_ROLE");
const natsUrl = need("CHAOS_NATS_URL");
const regions = loadRegions();
const participants = process.env.CHAOS_SERVICES?.split(",").filter(Boolean);

const store = await openKvDirectory({
	region: regionId,
	natsUrl,
	bucket: need("CHAOS_BUCKET"),
	hubReplicas: Number(need("CHAOS_HUB_REPLICAS")),
	namespacePrefix: need("EDGEHOME_NAMESPACE_PREFIX"),
	blindIndexKey: Buffer.from(need("EDGEHOME_BLIND_INDEX_KEY"), "base64")
});
const node = await startRegionNode({
	region: findRegion(regions, regionId),
	regions,
	transport: "nats",
	group: role,
	services: ["sv-region", ...(participants ?? [])],
	schemas: role === "svc" && !participants ? [ledgerService] : [],
	stores: realStores(need("CHAOS_RUN"), regionId),
	directory: { store, blindIndexKey: Buffer.from(need("EDGEHOME_BLIND_INDEX_KEY"), "base64") },
	env: { ...process.env, EDGEHOME_NATS_URL: natsUrl, EDGEHOME_NODE_ID: need("CHAOS_NODE_ID"), EDGEHOME_METRICS_PORT: "off", EDGEHOME_CACHER: "off" }
});

// Best effort, bounded: a node restarted while another region is down must still come up. The
// router learns an action's `home:` from an endpoint it knows, and the mover lists participants
// from each region's registry, so wait a little for both to be discovered.
const services = ["sv-region", ...(participants ?? ["ledger"])];
const discoveryMs = Number(process.env.CHAOS_DISCOVERY_WAIT_MS ?? 10_000);
if (discoveryMs > 0)
	await Promise.allSettled([
		node.broker.waitForServices(services, discoveryMs),
		...regions.filter(r => r.id !== regionId).map(async r => (await node.links.broker(r.id)).waitForServices(services, discoveryMs))
	]);
say(`@ready ${node.broker.nodeID}`);

interface Command {
	id: number;
	action: string;
	params: unknown;
	timeout?: number;
}

lines.on("line", line => {
	let cmd: Command;
	try {
		cmd = JSON.parse(line) as Command;
	} catch {
		return say(`@res ${JSON.stringify({ id: -1, ok: false, type: "BAD_COMMAND", message: line.slice(0, 200) })}`);
	}
	node.broker.call(cmd.action, cmd.params, cmd.timeout ? { timeout: cmd.timeout } : undefined).then(
		res => say(`@res ${JSON.stringify({ id: cmd.id, ok: true, res })}`),
		(err: { type?: string; name?: string; code?: number; message?: string; data?: unknown }) =>
			say(
				`@res ${JSON.stringify({ id: cmd.id, ok: false, type: err.type ?? err.name ?? "UNTYPED", code: err.code, message: String(err.message ?? "").slice(0, 300) })}`
			)
	);
});
