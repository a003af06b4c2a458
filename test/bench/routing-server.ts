import type { Generated } from "kysely";
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import type { DbVars } from "../../mixins/db.mixin.ts";
import { dbMixin } from "../../mixins/db.mixin.ts";
import { blindIndexKeyFromEnv } from "../../regions/runtime/secrets.ts";
import type { AnyServiceSchema } from "../../services/index.ts";
import { startKvNode } from "../harness/kv-node.ts";
import { realStores } from "../harness/real-servers.ts";
import { serveUntilStdinEnds } from "./measure.ts";

/** The same no-op action twice: once plain, once home-routed, so the difference is the routing. */
export const profileSchema: AnyServiceSchema = {
	name: "profile",
	actions: {
		plain: { params: { userId: "string" }, handler: (ctx: Context) => ctx.params },
		homed: { home: { param: "userId", readonly: true }, params: { userId: "string" }, handler: (ctx: Context) => ctx.params }
	}
};

export const WRITES_TABLE = "bench_writes";

export type WriteKind = "plain" | "homed";

interface WriteRow {
	id: Generated<number>;
	user_id: string;
	kind: WriteKind;
	created_at: number;
}

interface Tables {
	[WRITES_TABLE]: WriteRow;
}

interface JournalMethods {
	insert(userId: string, kind: WriteKind): Promise<void>;
}

/**
 * The same one-row INSERT twice: `plainWrite` autocommits it, `homedWrite` (a home-routed write)
 * commits it through the region's fence, so the difference is routing plus fencing.
 * `kind` lets the bench count each action's rows against its acknowledged calls.
 */
export const journalSchema: ServiceSchema<ServiceSettingSchema, JournalMethods, DbVars<Tables>> = {
	name: "journal",
	mixins: [
		dbMixin<Tables>({
			"0001_bench_writes": {
				async up(db) {
					await db.schema
						.createTable(WRITES_TABLE)
						.addColumn("id", "bigint", c => c.primaryKey().autoIncrement())
						.addColumn("user_id", "varchar(26)", c => c.notNull())
						.addColumn("kind", "varchar(8)", c => c.notNull())
						.addColumn("created_at", "bigint", c => c.notNull())
						.execute();
				}
			}
		})
	],
	actions: {
		plainWrite: {
			params: { userId: "string" },
			handler(ctx: Context<{ userId: string }>) {
				return this.insert(ctx.params.userId, "plain");
			}
		},
		homedWrite: {
			home: "userId",
			params: { userId: "string" },
			handler(ctx: Context<{ userId: string }>) {
				return this.insert(ctx.params.userId, "homed");
			}
		}
	},
	methods: {
		async insert(userId: string, kind: WriteKind) {
			await this.db.insertInto(WRITES_TABLE).values({ user_id: userId, kind, created_at: Date.now() }).execute();
		}
	}
};

// `node test/bench/routing-server.ts <region> <nats-url> <bucket> <namespace-prefix> <run> [hub-replicas]` with
// EDGEHOME_BLIND_INDEX_KEY set: serves `profile` and `journal` on the run's MariaDB database of the
// region (realStores), prints "ready", stops when its stdin closes. The bench drops the databases.
if (import.meta.main) {
	const [region, natsUrl, bucket, namespacePrefix, run, hubReplicas] = process.argv.slice(2);
	const blindIndexKey = blindIndexKeyFromEnv(process.env);
	if (!region || !natsUrl || !bucket || namespacePrefix === undefined || !run || !blindIndexKey) {
		console.error("usage: EDGEHOME_BLIND_INDEX_KEY=… node test/bench/routing-server.ts <region> <nats-url> <bucket> <namespace-prefix> <run> [hub-replicas]");
		process.exit(2);
	}
	const server = await startKvNode({
		region,
		natsUrl,
		bucket,
		namespacePrefix,
		hubReplicas: hubReplicas ? Number(hubReplicas) : undefined,
		blindIndexKey,
		schemas: [profileSchema, journalSchema],
		stores: realStores(run, region)
	});
	serveUntilStdinEnds("routing-server", () => server.stop());
}
