import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import type { DbVars } from "../../mixins/db.mixin.ts";
import { dbMixin } from "../../mixins/db.mixin.ts";
import type { MoveParticipantMethods } from "../../mixins/move-participant.mixin.ts";
import { moveParticipantMixin } from "../../mixins/move-participant.mixin.ts";

/** One acknowledged-or-not append; moved with the user. */
export interface AppendRow {
	id: string;
	op_id: string;
	user_id: string;
	/** Where it was first written (a moved row keeps it). */
	region: string;
	node: string;
	created_at: number;
}

/** Every insert `append` made, never touched by a move: the checker sees writes a move later deleted. */
export interface AuditRow {
	seq?: number;
	op_id: string;
	user_id: string;
	region: string;
	node: string;
	at: unknown;
	/** The same server time as `at`, in microseconds since the epoch (what the checker compares). */
	at_us: unknown;
}

interface Tables {
	ledger_appends: AppendRow;
	ledger_audit: AuditRow;
}

export const LEDGER_TABLE = "ledger_appends";
export const AUDIT_TABLE = "ledger_audit";

/**
 * The chaos test's move participant: a bank of appends per user. `op_id` is deliberately not
 * unique, so a write applied twice shows up as two rows instead of being hidden by a key.
 */
export const ledgerService: ServiceSchema<ServiceSettingSchema, MoveParticipantMethods, DbVars<Tables>> = {
	name: "ledger",
	mixins: [
		dbMixin<Tables>({
			"0001_ledger": {
				async up(db) {
					await db.schema
						.createTable(LEDGER_TABLE)
						.addColumn("id", "varchar(36)", c => c.primaryKey())
						.addColumn("op_id", "varchar(64)", c => c.notNull())
						.addColumn("user_id", "varchar(26)", c => c.notNull())
						.addColumn("region", "varchar(32)", c => c.notNull())
						.addColumn("node", "varchar(128)", c => c.notNull())
						.addColumn("created_at", "bigint", c => c.notNull())
						.execute();
					await db.schema.createIndex("ledger_appends_user").on(LEDGER_TABLE).column("user_id").execute();
					await db.schema
						.createTable(AUDIT_TABLE)
						.addColumn("seq", "bigint", c => c.autoIncrement().primaryKey())
						.addColumn("op_id", "varchar(64)", c => c.notNull())
						.addColumn("user_id", "varchar(26)", c => c.notNull())
						.addColumn("region", "varchar(32)", c => c.notNull())
						.addColumn("node", "varchar(128)", c => c.notNull())
						.addColumn("at", sql`datetime(6)`, c => c.notNull())
						.addColumn("at_us", "bigint", c => c.notNull())
						.execute();
				}
			}
		}),
		moveParticipantMixin()
	],
	actions: {
		append: {
			home: "userId",
			params: { $$strict: true, userId: "string", opId: { type: "string", min: 1, max: 64 } },
			async handler(ctx: Context<{ userId: string; opId: string }>) {
				const { userId, opId } = ctx.params;
				const region = this.broker.metadata.region as string;
				const node = this.broker.nodeID;
				await this.db.transaction().execute(async trx => {
					await trx.insertInto(LEDGER_TABLE).values({ id: randomUUID(), op_id: opId, user_id: userId, region, node, created_at: Date.now() }).execute();
					// Last statement before the commit, so its server time is as close to the commit as SQL allows.
					// NOW(6) is fixed for the statement: `at` and `at_us` are the same instant.
					await trx
						.insertInto(AUDIT_TABLE)
						.values({ op_id: opId, user_id: userId, region, node, at: sql`NOW(6)`, at_us: sql`CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)` })
						.execute();
				});
				return { region, node };
			}
		}
	},
	methods: {
		moveExport(userId: string) {
			return this.db.selectFrom(LEDGER_TABLE).selectAll().where("user_id", "=", userId).execute();
		},
		async moveImport(userId: string, rows: AppendRow[]) {
			// Replace: a retried import must not duplicate what an earlier attempt wrote.
			await this.db.transaction().execute(async trx => {
				await trx.deleteFrom(LEDGER_TABLE).where("user_id", "=", userId).execute();
				if (rows.length)
					await trx
						.insertInto(LEDGER_TABLE)
						.values(rows.map(r => ({ ...r, user_id: userId })))
						.execute();
			});
		},
		async moveCount(userId: string) {
			const r = await this.db
				.selectFrom(LEDGER_TABLE)
				.select(eb => eb.fn.countAll().as("n"))
				.where("user_id", "=", userId)
				.executeTakeFirst();
			return Number(r?.n ?? 0);
		},
		async moveDelete(userId: string) {
			const r = await this.db.deleteFrom(LEDGER_TABLE).where("user_id", "=", userId).executeTakeFirst();
			return Number(r.numDeletedRows);
		}
	}
};
