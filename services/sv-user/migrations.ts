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
	},
	// Registrations whose outcome is not known yet (pending-registrations.ts).
	"0002_pending_registrations": {
		async up(db: Kysely<any>) {
			await db.schema
				.createTable("pending_registrations")
				.addColumn("user_id", "varchar(26)", c => c.primaryKey())
				.addColumn("identities_enc", "varchar(4096)", c => c.notNull())
				.addColumn("identities_kid", "varchar(16)", c => c.notNull())
				.addColumn("created_at", "bigint", c => c.notNull())
				.execute();
			await db.schema.createIndex("pending_registrations_created_at").on("pending_registrations").column("created_at").execute();
		},
		async down(db: Kysely<any>) {
			await db.schema.dropTable("pending_registrations").execute();
		}
	}
};
