import type { Kysely } from "kysely";
import { SqliteAdapter } from "kysely";
import type { Migrations } from "../../regions/stores/index.ts";

/**
 * The ledger of one region. Accounts are keyed by owner (a user id, or `sys:<kind>:<slot>` for the
 * region's system accounts) and currency; a balance changes only together with the entries that
 * explain it. A transfer is recorded once per user it concerns (its `owner_id`), so each user's
 * history moves with that user; entries are the double-entry legs, summing to zero per transfer.
 */
/** A 64-bit auto-increment key: SQLite's is its INTEGER PRIMARY KEY (64-bit already), MySQL's a BIGINT. */
const serialType = (db: Kysely<any>) => (db.getExecutor().adapter instanceof SqliteAdapter ? "integer" : "bigint");

export const migrations: Migrations = {
	"0001_ledger": {
		async up(db: Kysely<any>) {
			const serial = serialType(db);
			await db.schema
				.createTable("money_accounts")
				.addColumn("owner_id", "varchar(40)", c => c.notNull())
				.addColumn("currency", "char(3)", c => c.notNull())
				.addColumn("kind", "varchar(12)", c => c.notNull())
				.addColumn("balance", "bigint", c => c.notNull().defaultTo(0))
				.addColumn("held", "bigint", c => c.notNull().defaultTo(0))
				.addColumn("created_at", "bigint", c => c.notNull())
				.addPrimaryKeyConstraint("money_accounts_pk", ["owner_id", "currency"])
				.execute();
			await db.schema
				.createTable("money_wallets")
				.addColumn("user_id", "varchar(26)", c => c.primaryKey())
				.addColumn("frozen", "integer", c => c.notNull().defaultTo(0))
				.addColumn("reason", "varchar(200)")
				.addColumn("updated_at", "bigint", c => c.notNull())
				.execute();
			await db.schema
				.createTable("money_transfers")
				.addColumn("owner_id", "varchar(26)", c => c.notNull())
				.addColumn("id", "varchar(36)", c => c.notNull())
				.addColumn("kind", "varchar(12)", c => c.notNull())
				.addColumn("from_id", "varchar(40)", c => c.notNull())
				.addColumn("to_id", "varchar(40)", c => c.notNull())
				.addColumn("from_region", "varchar(32)", c => c.notNull())
				.addColumn("to_region", "varchar(32)", c => c.notNull())
				.addColumn("amount", "bigint", c => c.notNull())
				.addColumn("currency", "char(3)", c => c.notNull())
				.addColumn("memo", "varchar(200)")
				.addColumn("status", "varchar(10)", c => c.notNull())
				.addColumn("reason", "varchar(64)")
				.addColumn("operator_id", "varchar(26)")
				.addColumn("idempotency_key", "varchar(255)")
				.addColumn("request_hash", "char(64)")
				.addColumn("created_at", "bigint", c => c.notNull())
				.addColumn("completed_at", "bigint")
				.addPrimaryKeyConstraint("money_transfers_pk", ["owner_id", "id"])
				.execute();
			await db.schema.createIndex("money_transfers_key").on("money_transfers").columns(["owner_id", "idempotency_key"]).unique().execute();
			await db.schema.createIndex("money_transfers_pending").on("money_transfers").columns(["status", "created_at"]).execute();
			await db.schema
				.createTable("money_entries")
				.addColumn("id", serial, c => c.primaryKey().autoIncrement())
				.addColumn("transfer_id", "varchar(36)", c => c.notNull())
				.addColumn("account_owner", "varchar(40)", c => c.notNull())
				.addColumn("currency", "char(3)", c => c.notNull())
				.addColumn("kind", "varchar(12)", c => c.notNull())
				.addColumn("amount", "bigint", c => c.notNull())
				.addColumn("created_at", "bigint", c => c.notNull())
				.execute();
			await db.schema.createIndex("money_entries_account").on("money_entries").columns(["account_owner", "currency", "id"]).execute();
			await db.schema.createIndex("money_entries_transfer").on("money_entries").columns(["transfer_id"]).execute();
			await db.schema
				.createTable("money_holds")
				.addColumn("id", "varchar(36)", c => c.primaryKey())
				.addColumn("owner_id", "varchar(26)", c => c.notNull())
				.addColumn("to_id", "varchar(26)", c => c.notNull())
				.addColumn("amount", "bigint", c => c.notNull())
				.addColumn("currency", "char(3)", c => c.notNull())
				.addColumn("memo", "varchar(200)")
				.addColumn("status", "varchar(10)", c => c.notNull())
				.addColumn("transfer_id", "varchar(36)")
				.addColumn("idempotency_key", "varchar(255)")
				.addColumn("request_hash", "char(64)")
				.addColumn("created_at", "bigint", c => c.notNull())
				.addColumn("expires_at", "bigint", c => c.notNull())
				.execute();
			await db.schema.createIndex("money_holds_key").on("money_holds").columns(["owner_id", "idempotency_key"]).unique().execute();
			await db.schema.createIndex("money_holds_expiry").on("money_holds").columns(["status", "expires_at"]).execute();
			await db.schema
				.createTable("money_outbox")
				.addColumn("id", serial, c => c.primaryKey().autoIncrement())
				.addColumn("owner_id", "varchar(26)", c => c.notNull())
				.addColumn("channel", "varchar(64)", c => c.notNull())
				.addColumn("msg_key", "varchar(64)", c => c.notNull())
				.addColumn("region", "varchar(32)", c => c.notNull())
				.addColumn("payload", "varchar(2000)", c => c.notNull())
				.addColumn("created_at", "bigint", c => c.notNull())
				.addColumn("claimed_until", "bigint", c => c.notNull().defaultTo(0))
				.execute();
			await db.schema.createIndex("money_outbox_owner").on("money_outbox").columns(["owner_id"]).execute();
		},
		async down(db: Kysely<any>) {
			for (const table of ["money_outbox", "money_holds", "money_entries", "money_transfers", "money_wallets", "money_accounts"])
				await db.schema.dropTable(table).execute();
		}
	}
};
