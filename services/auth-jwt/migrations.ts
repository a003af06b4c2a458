import type { Kysely } from "kysely";
import type { Migrations } from "../../regions/stores/index.ts";

export const migrations: Migrations = {
	"0001_sessions": {
		async up(db: Kysely<any>) {
			// `active_key` is "<userId>:<client>" while the session is live and NULL once it ends: the
			// unique index is what makes "one live session per user and client type" hold under races.
			await db.schema
				.createTable("auth_sessions")
				.addColumn("sid", "varchar(36)", c => c.primaryKey())
				.addColumn("user_id", "varchar(26)", c => c.notNull())
				.addColumn("client", "varchar(8)", c => c.notNull())
				.addColumn("active_key", "varchar(40)", c => c.unique())
				.addColumn("created_at", "bigint", c => c.notNull())
				.addColumn("last_used_at", "bigint", c => c.notNull())
				.addColumn("ended_at", "bigint")
				.addColumn("end_reason", "varchar(16)")
				.execute();
			await db.schema.createIndex("auth_sessions_user").on("auth_sessions").column("user_id").execute();
			// Refresh tokens are stored only as SHA-256 hashes; `rotated_at` marks a spent one.
			await db.schema
				.createTable("auth_refresh_tokens")
				.addColumn("hash", "varchar(43)", c => c.primaryKey())
				.addColumn("sid", "varchar(36)", c => c.notNull())
				.addColumn("user_id", "varchar(26)", c => c.notNull())
				.addColumn("issued_at", "bigint", c => c.notNull())
				.addColumn("expires_at", "bigint", c => c.notNull())
				.addColumn("rotated_at", "bigint")
				.execute();
			await db.schema.createIndex("auth_refresh_tokens_sid").on("auth_refresh_tokens").column("sid").execute();
			await db.schema.createIndex("auth_refresh_tokens_user").on("auth_refresh_tokens").column("user_id").execute();
			// The region's revocation feed: ids only grow, so every node can ask "what came after N".
			await db.schema
				.createTable("auth_revocations")
				.addColumn("id", "integer", c => c.primaryKey().autoIncrement())
				.addColumn("sid", "varchar(36)", c => c.notNull())
				.addColumn("expires_at", "bigint", c => c.notNull())
				.addColumn("created_at", "bigint", c => c.notNull())
				.execute();
			await db.schema.createIndex("auth_revocations_expires").on("auth_revocations").column("expires_at").execute();
		},
		async down(db: Kysely<any>) {
			for (const t of ["auth_revocations", "auth_refresh_tokens", "auth_sessions"]) await db.schema.dropTable(t).execute();
		}
	},
	"0002_signing_keys": {
		async up(db: Kysely<any>) {
			// One row per key generation of this region; the private half is sealed (AES-256-GCM).
			await db.schema
				.createTable("auth_keys")
				.addColumn("generation", "integer", c => c.primaryKey())
				.addColumn("kid", "varchar(64)", c => c.notNull().unique())
				.addColumn("public_jwk", "text", c => c.notNull())
				.addColumn("private_sealed", "text", c => c.notNull())
				.addColumn("sealed_kid", "varchar(16)", c => c.notNull())
				.addColumn("state", "varchar(8)", c => c.notNull())
				.addColumn("created_at", "bigint", c => c.notNull())
				.addColumn("activates_at", "bigint", c => c.notNull())
				.addColumn("retires_at", "bigint")
				.execute();
		},
		async down(db: Kysely<any>) {
			await db.schema.dropTable("auth_keys").execute();
		}
	}
};
