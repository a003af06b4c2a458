import { randomBytes } from "node:crypto";
import { gatewaySchemas } from "../harness/gateways.ts";
import { startKvNode } from "../harness/kv-node.ts";
import { serveUntilStdinEnds } from "./measure.ts";

// `node test/bench/oss-server.ts <nats-url> <directory-bucket> <namespace-prefix>` with EDGEHOME_PII_KEYS set:
// one cn-east node as deployed (NATS, the Object Store, api-app and sv-oss in one process); prints
// "ready <app port>", stops when its stdin closes.
if (import.meta.main) {
	const [natsUrl, bucket, namespacePrefix] = process.argv.slice(2);
	if (!natsUrl || !bucket || namespacePrefix === undefined) {
		console.error("usage: node test/bench/oss-server.ts <nats-url> <directory-bucket> <namespace-prefix>");
		process.exit(2);
	}
	const server = await startKvNode({
		region: "cn-east",
		natsUrl,
		bucket,
		namespacePrefix,
		blindIndexKey: randomBytes(32),
		services: ["sv-region", "sv-user", "auth-jwt", "auth-rbac", "sv-oss"],
		schemas: gatewaySchemas().filter(s => s.name === "api-app")
	});
	const gateway = server.node.broker.getLocalService("api-app") as unknown as { server: { address(): { port: number } } };
	process.stdout.write(`port ${gateway.server.address().port}\n`);
	serveUntilStdinEnds("oss-server", () => server.stop());
}
