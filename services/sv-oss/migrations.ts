import type { Kysely } from "kysely";
import type { Migrations } from "../../regions/stores/index.ts";

/**
 * Each file's row in the owner's home region (its bytes are in the region's blob store under
 * `<owner>/<id>`), and each owner's bytes in use: one row, changed by a conditional update, so
 * two uploads at once can never both fit into the last of a quota.
 */
export const migrations: Migrations = {
	"0001_files": {
		async up(db: Kysely<any>) {
			await db.schema
				.createTable("oss_files")
				.addColumn("id", "varchar(36)", c => c.primaryKey())
				.addColumn("user_id", "varchar(26)", c => c.notNull())
				.addColumn("name", "varchar(1000)", c => c.notNull())
				.addColumn("size", "bigint", c => c.notNull())
				.addColumn("content_type", "varchar(130)", c => c.notNull())
				.addColumn("sha256", "varchar(64)", c => c.notNull())
				.addColumn("created_at", "bigint", c => c.notNull())
				.execute();
			await db.schema.createIndex("oss_files_owner").on("oss_files").columns(["user_id", "created_at", "id"]).execute();
			await db.schema
				.createTable("oss_usage")
				.addColumn("user_id", "varchar(26)", c => c.primaryKey())
				.addColumn("bytes", "bigint", c => c.notNull())
				.execute();
		},
		async down(db: Kysely<any>) {
			await db.schema.dropTable("oss_usage").execute();
			await db.schema.dropTable("oss_files").execute();
		}
	}
};
