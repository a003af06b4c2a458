import type { Context } from "moleculer";
import { blindIndexKeyFromEnv } from "../../regions/runtime/secrets.ts";
import type { AnyServiceSchema } from "../../services/index.ts";
import { startKvNode } from "../harness/kv-node.ts";
import { serveUntilStdinEnds } from "./measure.ts";

/** The same no-op action twice: once plain, once home-routed, so the difference is the routing. */
export const profileSchema: AnyServiceSchema = {
	name: "profile",
	actions: {
		plain: { params: { userId: "string" }, handler: (ctx: Context) => ctx.params },
		homed: { home: { param: "userId", readonly: true }, params: { userId: "string" }, handler: (ctx: Context) => ctx.params }
	}
};

// `node test/bench/routing-server.ts <region> <nats-url> <bucket> <namespace-prefix> [primary]` with
// EDGEHOME_BLIND_INDEX_KEY set: serves `profile`, prints "ready", stops when its stdin closes.
if (import.meta.main) {
	const [region, natsUrl, bucket, namespacePrefix, primary] = process.argv.slice(2);
	const blindIndexKey = blindIndexKeyFromEnv(process.env);
	if (!region || !natsUrl || !bucket || namespacePrefix === undefined || !blindIndexKey) {
		console.error("usage: EDGEHOME_BLIND_INDEX_KEY=… node test/bench/routing-server.ts <region> <nats-url> <bucket> <namespace-prefix> [primary]");
		process.exit(2);
	}
	const server = await startKvNode({ region, natsUrl, bucket, namespacePrefix, primary, blindIndexKey, schemas: [profileSchema] });
	serveUntilStdinEnds("routing-server", () => server.stop());
}
