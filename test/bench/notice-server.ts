import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { blindIndexKeyFromEnv } from "../../regions/runtime/secrets.ts";
import { gatewaySchemas } from "../harness/gateways.ts";
import { startKvNode } from "../harness/kv-node.ts";
import { realStores } from "../harness/real-servers.ts";
import { serveUntilStdinEnds } from "./measure.ts";

// `node test/bench/notice-server.ts <region> <nats-url> <bucket> <namespace-prefix> <run> <www-port>` with
// EDGEHOME_BLIND_INDEX_KEY and EDGEHOME_PII_KEYS set: one region node as deployed on the run's MariaDB
// database of the region (realStores): sv-region, sv-user, the auth services, sv-notice, and the api-www
// gateway on <www-port>, which serves the live notice streams. Prints "ready", stops when its stdin closes.
// BENCH_NOTICE_CPU_PROFILE=<file>: V8's CPU profile of the node from start to stop, written there when it stops.
if (import.meta.main) {
	const [region, natsUrl, bucket, namespacePrefix, run, wwwPort] = process.argv.slice(2);
	const blindIndexKey = blindIndexKeyFromEnv(process.env);
	if (!region || !natsUrl || !bucket || namespacePrefix === undefined || !run || !wwwPort || !blindIndexKey) {
		console.error("usage: EDGEHOME_BLIND_INDEX_KEY=… node test/bench/notice-server.ts <region> <nats-url> <bucket> <namespace-prefix> <run> <www-port>");
		process.exit(2);
	}
	const profiler = process.env.BENCH_NOTICE_CPU_PROFILE ? new Session() : undefined;
	profiler?.connect();
	await profiler?.post("Profiler.enable");
	await profiler?.post("Profiler.start");
	const www = gatewaySchemas({ "api-www": { port: Number(wwwPort) } }).filter(s => s.name === "api-www");
	const services = ["sv-region", "sv-user", "auth-jwt", "auth-rbac", "sv-notice"];
	const server = await startKvNode({ region, natsUrl, bucket, namespacePrefix, blindIndexKey, services, schemas: www, stores: realStores(run, region) });
	serveUntilStdinEnds("notice-server", async () => {
		await server.stop();
		if (profiler) writeFileSync(process.env.BENCH_NOTICE_CPU_PROFILE!, JSON.stringify((await profiler.post("Profiler.stop")).profile));
	});
}
