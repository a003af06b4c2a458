import type { Kysely } from "kysely";
import { SqliteAdapter, sql } from "kysely";
import type { Migrations } from "../../regions/stores/index.ts";

/** A 64-bit auto-increment key: SQLite's is its INTEGER PRIMARY KEY, MySQL's a BIGINT. */
const serialType = (db: Kysely<any>) => (db.getExecutor().adapter instanceof SqliteAdapter ? "integer" : "bigint");

/**
 * A user's inbox in the home region: notices numbered per user (`seq`, the live stream's event
 * id, kept across moves), each sent once per idempotency key; the user's preferences; and the
 * outbox of what the inbox entry calls for beyond it (live push, e-mail, webhook).
 */
export const migrations: Migrations = {
	"0001_inbox": {
		async up(db: Kysely<any>) {
			await db.schema
				.createTable("notice_inbox")
				.addColumn("user_id", "varchar(26)", c => c.notNull())
				.addColumn("seq", "bigint", c => c.notNull())
				.addColumn("id", "varchar(36)", c => c.notNull().unique())
				.addColumn("category", "varchar(16)", c => c.notNull())
				.addColumn("template", "varchar(64)", c => c.notNull())
				.addColumn("locale", "varchar(8)", c => c.notNull())
				.addColumn("title", "varchar(300)", c => c.notNull())
				.addColumn("body_text", "text", c => c.notNull())
				.addColumn("body_html", "text", c => c.notNull())
				.addColumn("idempotency_key", "varchar(255)", c => c.notNull())
				.addColumn("created_at", "bigint", c => c.notNull())
				.addColumn("read_at", "bigint")
				.addColumn("deleted_at", "bigint")
				.addPrimaryKeyConstraint("notice_inbox_pk", ["user_id", "seq"])
				.execute();
			await db.schema.createIndex("notice_inbox_key").on("notice_inbox").columns(["user_id", "idempotency_key"]).unique().execute();
			await db.schema
				.createTable("notice_preferences")
				.addColumn("user_id", "varchar(26)", c => c.primaryKey())
				.addColumn("locale", "varchar(8)")
				.addColumn("opt_outs", "varchar(1000)", c => c.notNull())
				.addColumn("updated_at", "bigint", c => c.notNull())
				.execute();
			await db.schema
				.createTable("notice_outbox")
				.addColumn("id", serialType(db), c => c.primaryKey().autoIncrement())
				.addColumn("owner_id", "varchar(26)", c => c.notNull())
				.addColumn("channel", "varchar(64)", c => c.notNull())
				.addColumn("msg_key", "varchar(64)", c => c.notNull())
				.addColumn("region", "varchar(32)", c => c.notNull())
				.addColumn("payload", "text", c => c.notNull())
				.addColumn("created_at", "bigint", c => c.notNull())
				.addColumn("claimed_until", "bigint", c => c.notNull().defaultTo(0))
				.execute();
			await db.schema.createIndex("notice_outbox_owner").on("notice_outbox").columns(["owner_id"]).execute();
		},
		async down(db: Kysely<any>) {
			for (const table of ["notice_outbox", "notice_preferences", "notice_inbox"]) await db.schema.dropTable(table).execute();
		}
	},
	"0002_announcements": {
		async up(db: Kysely<any>) {
			// Where an announcement was made: what it says and the regions it goes to.
			await db.schema
				.createTable("notice_announcements")
				.addColumn("id", "varchar(36)", c => c.primaryKey())
				.addColumn("title", "varchar(200)", c => c.notNull())
				.addColumn("body", "text", c => c.notNull())
				.addColumn("regions", "varchar(1000)", c => c.notNull())
				.addColumn("created_at", "bigint", c => c.notNull())
				.execute();
			// In each region it goes to: how far the fan-out over the region's users got (the last user id done).
			await db.schema
				.createTable("notice_announcement_runs")
				.addColumn("id", "varchar(36)", c => c.primaryKey())
				.addColumn("title", "varchar(200)", c => c.notNull())
				.addColumn("body", "text", c => c.notNull())
				.addColumn("last_user_id", "varchar(26)", c => c.notNull().defaultTo(""))
				.addColumn("targeted", "integer", c => c.notNull())
				.addColumn("written", "integer", c => c.notNull().defaultTo(0))
				.addColumn("pushed", "integer", c => c.notNull().defaultTo(0))
				.addColumn("failed", "integer", c => c.notNull().defaultTo(0))
				.addColumn("done", "integer", c => c.notNull().defaultTo(0))
				.addColumn("claimed_until", "bigint", c => c.notNull().defaultTo(0))
				.addColumn("created_at", "bigint", c => c.notNull())
				.execute();
		},
		async down(db: Kysely<any>) {
			for (const table of ["notice_announcement_runs", "notice_announcements"]) await db.schema.dropTable(table).execute();
		}
	},
	"0003_announcement_failures": {
		// The users of a run whose send still failed after its retries, and why.
		async up(db: Kysely<any>) {
			await db.schema
				.createTable("notice_announcement_failures")
				.addColumn("run_id", "varchar(36)", c => c.notNull())
				.addColumn("user_id", "varchar(26)", c => c.notNull())
				.addColumn("type", "varchar(64)", c => c.notNull())
				.addColumn("message", "varchar(500)", c => c.notNull())
				.addColumn("attempts", "integer", c => c.notNull())
				.addColumn("failed_at", "bigint", c => c.notNull())
				.addPrimaryKeyConstraint("notice_announcement_failures_pk", ["run_id", "user_id"])
				.execute();
		},
		async down(db: Kysely<any>) {
			await db.schema.dropTable("notice_announcement_failures").execute();
		}
	},
	"0004_tallies": {
		// Each user's last number and unread count (tallies.ts), counted once from the inbox as it stands.
		async up(db: Kysely<any>) {
			await db.schema
				.createTable("notice_tallies")
				.addColumn("user_id", "varchar(26)", c => c.primaryKey())
				.addColumn("last_seq", "bigint", c => c.notNull())
				.addColumn("unread", "integer", c => c.notNull())
				.execute();
			await sql`insert into notice_tallies (user_id, last_seq, unread)
				select user_id, max(seq), sum(case when read_at is null and deleted_at is null then 1 else 0 end) from notice_inbox group by user_id`.execute(db);
		},
		async down(db: Kysely<any>) {
			await db.schema.dropTable("notice_tallies").execute();
		}
	}
};
