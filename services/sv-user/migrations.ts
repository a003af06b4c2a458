import type { Kysely } from "kysely";
import type { Migrations } from "../../regions/stores/index.ts";

export const migrations: Migrations = {
	"0001_users": {
		async up(db: Kysely<any>) {
			await db.schema
				.createTable("users")
				.addColumn("id", "varchar(26)", c => c.primaryKey())
				.addColumn("username", "varchar(32)", c => c.notNull().unique())
				.addColumn("password_hash", "varchar(160)", c => c.notNull())
				.addColumn("email_enc", "varchar(512)")
				.addColumn("email_kid", "varchar(16)")
				.addColumn("phone_enc", "varchar(256)")
				.addColumn("phone_kid", "varchar(16)")
				.addColumn("country", "varchar(2)")
				.addColumn("created_at", "bigint", c => c.notNull())
				.addColumn("updated_at", "bigint", c => c.notNull())
				.execute();
		},
		async down(db: Kysely<any>) {
			await db.schema.dropTable("users").execute();
		}
	}
};
