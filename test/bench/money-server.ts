import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { join } from "node:path";
import type { ServiceBroker } from "moleculer";
import { regionRuntimeOf } from "../../regions/runtime/region-runtime.ts";
import { blindIndexKeyFromEnv } from "../../regions/runtime/secrets.ts";
import type { AnyServiceSchema } from "../../services/index.ts";
import { startKvNode } from "../harness/kv-node.ts";
import { realStores } from "../harness/real-servers.ts";
import { serveUntilStdinEnds } from "./measure.ts";
import type { StatementCounts } from "./money-statements.ts";
import { countStatements, statementCounts } from "./money-statements.ts";

/** What a money node did so far: the fence's batches, its statements to MariaDB, its relay's sends. */
export interface MoneyNodeStats {
	batches: { batches: number; writes: number; left: number };
	statements: StatementCounts;
	relay: { sent: number; failed: number };
}

/** The bench's window into a money node; not part of the system under test (it is called only between measured windows). */
const statsSchema: AnyServiceSchema = {
	name: "money-bench",
	actions: {
		stats(this: { broker: ServiceBroker }): MoneyNodeStats {
			const money = this.broker.getLocalService("sv-money") as unknown as { relay: { stats: { sent: number; failed: number } } };
			return { batches: { ...regionRuntimeOf(this.broker).fence.batches.stats }, statements: statementCounts(), relay: { ...money.relay.stats } };
		}
	}
};

/** With BENCH_MONEY_CPU_PROFILE=<dir>: V8's CPU profile of this node from start to stop, written to `<dir>/money-<region>-<pid>.cpuprofile`. */
async function cpuProfile(dir: string | undefined, region: string): Promise<() => Promise<void>> {
	if (!dir) return async () => undefined;
	const session = new Session();
	session.connect();
	await session.post("Profiler.enable");
	await session.post("Profiler.start");
	return async () => {
		const { profile } = await session.post("Profiler.stop");
		writeFileSync(join(dir, `money-${region}-${process.pid}.cpuprofile`), JSON.stringify(profile));
		session.disconnect();
	};
}

// `node test/bench/money-server.ts <region> <nats-url> <bucket> <namespace-prefix> <run>` with EDGEHOME_BLIND_INDEX_KEY
// set: one region node serving sv-region and sv-money on the run's MariaDB database of the region (realStores),
// with the region store's pool as deployed; prints "ready", stops when its stdin closes. The bench drops the databases.
if (import.meta.main) {
	const [region, natsUrl, bucket, namespacePrefix, run] = process.argv.slice(2);
	const blindIndexKey = blindIndexKeyFromEnv(process.env);
	if (!region || !natsUrl || !bucket || namespacePrefix === undefined || !run || !blindIndexKey) {
		console.error("usage: EDGEHOME_BLIND_INDEX_KEY=… node test/bench/money-server.ts <region> <nats-url> <bucket> <namespace-prefix> <run>");
		process.exit(2);
	}
	countStatements();
	const writeProfile = await cpuProfile(process.env.BENCH_MONEY_CPU_PROFILE, region);
	const server = await startKvNode({
		region,
		natsUrl,
		bucket,
		namespacePrefix,
		blindIndexKey,
		services: ["sv-region", "sv-money"],
		schemas: [statsSchema],
		stores: realStores(run, region)
	});
	serveUntilStdinEnds("money-server", () => server.stop().finally(writeProfile));
}
