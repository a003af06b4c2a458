import ApiGateway from "moleculer-web";
import { blindIndexKeyFromEnv } from "../../regions/runtime/secrets.ts";
import { startProcessTracing } from "../../regions/runtime/tracing/process-sdk.ts";
import type { AnyServiceSchema } from "../../services/index.ts";
import { gatewaySchemas } from "../harness/gateways.ts";
import { startKvNode } from "../harness/kv-node.ts";
import { REAL } from "../harness/real-servers.ts";
import { serveUntilStdinEnds } from "./measure.ts";

/** Stock moleculer-web with one route to sv-user.get: no auth, no RBAC, nothing of ours in front. */
function bareGateway(port: number): AnyServiceSchema {
	return {
		name: "api-bare",
		mixins: [ApiGateway],
		settings: {
			port,
			ip: "127.0.0.1",
			logRequest: null,
			logResponse: null,
			routes: [{ path: "/", mappingPolicy: "restrict", aliases: { "GET /profile/:userId": "sv-user.get" } }]
		}
	};
}

const ROLES: Record<string, { services: string[]; gateways: boolean }> = {
	// The entry node: both gateways, token verification, RBAC and the directory client; no sv-user.
	gateway: { services: ["sv-region", "auth-jwt", "auth-rbac"], gateways: true },
	// "Another node" of the same region, holding the users.
	users: { services: ["sv-region", "sv-user"], gateways: false },
	// The other region, all in one node.
	region: { services: ["sv-region", "sv-user", "auth-jwt", "auth-rbac"], gateways: false }
};

// `node test/bench/gateway-server.ts <role> <region> <nats-url> <bucket> <namespace-prefix> <hub-replicas> [app-port bare-port]`
// with EDGEHOME_BLIND_INDEX_KEY and EDGEHOME_PII_KEYS set: prints "ready", stops when its stdin closes.
if (import.meta.main) {
	const [role, region, natsUrl, bucket, namespacePrefix, hubReplicas, appPort, barePort] = process.argv.slice(2);
	const blindIndexKey = blindIndexKeyFromEnv(process.env);
	const spec = role ? ROLES[role] : undefined;
	if (
		!spec ||
		!region ||
		!natsUrl ||
		!bucket ||
		namespacePrefix === undefined ||
		!hubReplicas ||
		!blindIndexKey ||
		(spec.gateways && (!appPort || !barePort))
	) {
		console.error(
			"usage: node test/bench/gateway-server.ts gateway|users|region <region> <nats-url> <bucket> <namespace-prefix> <hub-replicas> [app-port bare-port]"
		);
		process.exit(2);
	}
	const schemas = spec.gateways
		? [...gatewaySchemas({ "api-app": { port: Number(appPort) } }).filter(s => s.name === "api-app"), bareGateway(Number(barePort))]
		: [];
	// The entry node counts its rate limits in Redis, as a deployed gateway does. Entry nodes given one
	// SQL file share it as a region's nodes share its database: auth-jwt's signing keys are in it.
	const sql = process.env.BENCH_GATEWAY_SQL ?? "sqlite::memory:";
	const stores = spec.gateways ? { sql, redis: REAL.redis, keyPrefix: `${namespacePrefix}${region}:` } : undefined;
	// The bench's own tracing switch (EDGEHOME_OTLP_URL, EDGEHOME_TRACE_SAMPLE_RATIO): unset, no tracing.
	const tracingEnv = Object.fromEntries(
		["EDGEHOME_OTLP_URL", "EDGEHOME_TRACE_SAMPLE_RATIO"].flatMap(name => (process.env[name] ? [[name, process.env[name]]] : []))
	);
	const tracing = startProcessTracing(tracingEnv, { regions: [region], group: "test" });
	const server = await startKvNode({
		region,
		natsUrl,
		bucket,
		namespacePrefix,
		hubReplicas: Number(hubReplicas),
		blindIndexKey,
		services: spec.services,
		schemas,
		stores,
		env: tracingEnv
	});
	serveUntilStdinEnds("gateway-server", async () => {
		await server.stop();
		await tracing?.stop();
	});
}
