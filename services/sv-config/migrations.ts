import type { Kysely } from "kysely";
import type { Migrations } from "../../regions/stores/index.ts";

export const migrations: Migrations = {
	"0001_config_entries": {
		async up(db: Kysely<any>) {
			// Append-only: every change is a new version, so history and rollback are free.
			await db.schema
				.createTable("config_entries")
				.addColumn("scope", "varchar(16)", c => c.notNull())
				.addColumn("key", "varchar(128)", c => c.notNull())
				.addColumn("version", "integer", c => c.notNull())
				.addColumn("value", "text", c => c.notNull())
				.addColumn("author", "varchar(64)")
				.addColumn("created_at", "bigint", c => c.notNull())
				.addPrimaryKeyConstraint("config_entries_pk", ["scope", "key", "version"])
				.execute();
		},
		async down(db: Kysely<any>) {
			await db.schema.dropTable("config_entries").execute();
		}
	}
};
