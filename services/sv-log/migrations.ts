import type { Kysely } from "kysely";
import type { Migrations } from "../../regions/stores/index.ts";

/**
 * A region's audit chain: one row per record, keyed by its position, with the indexes the queries
 * filter on (time, actor, target, request id); and per region the signed checkpoint retention
 * left. Times are ms since the epoch.
 */
export const migrations: Migrations = {
	"0001_audit_log": {
		async up(db: Kysely<any>) {
			await db.schema
				.createTable("audit_log")
				.addColumn("region", "varchar(32)", c => c.notNull())
				.addColumn("seq", "bigint", c => c.notNull())
				.addColumn("id", "varchar(64)", c => c.notNull())
				.addColumn("at", "bigint", c => c.notNull())
				.addColumn("actor", "varchar(64)", c => c.notNull())
				.addColumn("action", "varchar(64)", c => c.notNull())
				.addColumn("target", "varchar(128)")
				.addColumn("outcome", "varchar(16)", c => c.notNull())
				.addColumn("request_id", "varchar(64)")
				.addColumn("trace_id", "varchar(32)")
				.addColumn("ip_hash", "varchar(64)")
				.addColumn("detail", "text")
				.addColumn("logged_at", "bigint", c => c.notNull())
				.addColumn("prev_hash", "varchar(64)", c => c.notNull())
				.addColumn("hash", "varchar(64)", c => c.notNull())
				.addPrimaryKeyConstraint("audit_log_pk", ["region", "seq"])
				.execute();
			await db.schema.createIndex("audit_log_id").on("audit_log").columns(["region", "id"]).unique().execute();
			await db.schema.createIndex("audit_log_at").on("audit_log").columns(["region", "at"]).execute();
			await db.schema.createIndex("audit_log_actor").on("audit_log").columns(["region", "actor", "at"]).execute();
			await db.schema.createIndex("audit_log_target").on("audit_log").columns(["region", "target", "at"]).execute();
			await db.schema.createIndex("audit_log_request").on("audit_log").columns(["request_id"]).execute();
			await db.schema
				.createTable("audit_checkpoints")
				.addColumn("region", "varchar(32)", c => c.primaryKey())
				.addColumn("seq", "bigint", c => c.notNull())
				.addColumn("hash", "varchar(64)", c => c.notNull())
				.addColumn("at", "bigint", c => c.notNull())
				.addColumn("kid", "varchar(64)", c => c.notNull())
				.addColumn("signature", "varchar(64)", c => c.notNull())
				.execute();
		},
		async down(db: Kysely<any>) {
			for (const table of ["audit_checkpoints", "audit_log"]) await db.schema.dropTable(table).execute();
		}
	}
};
