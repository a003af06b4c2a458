import { randomUUID } from "node:crypto";
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import type { DbVars } from "../../mixins/db.mixin.ts";
import { dbMixin } from "../../mixins/db.mixin.ts";
import type { MoveParticipantMethods } from "../../mixins/move-participant.mixin.ts";
import { moveParticipantMixin } from "../../mixins/move-participant.mixin.ts";

const IMPORT_CHUNK = 500;

interface NoteRow {
	id: string;
	user_id: string;
	text: string;
	region: string;
	created_at: number;
}

interface Tables {
	notes: NoteRow;
}

/**
 * A test-only per-user service with real rows: home-routed writes and reads, and a move
 * participant, as any service holding user data will be.
 */
export const notesService: ServiceSchema<ServiceSettingSchema, MoveParticipantMethods, DbVars<Tables>> = {
	name: "notes",
	mixins: [
		dbMixin<Tables>({
			"0001_notes": {
				async up(db) {
					await db.schema
						.createTable("notes")
						.addColumn("id", "varchar(36)", c => c.primaryKey())
						.addColumn("user_id", "varchar(26)", c => c.notNull())
						.addColumn("text", "varchar(200)", c => c.notNull())
						.addColumn("region", "varchar(32)", c => c.notNull())
						.addColumn("created_at", "bigint", c => c.notNull())
						.execute();
					await db.schema.createIndex("notes_user").on("notes").column("user_id").execute();
				}
			}
		}),
		moveParticipantMixin()
	],
	actions: {
		add: {
			home: "userId",
			params: { $$strict: true, userId: "string", text: { type: "string", max: 200 }, delayMs: { type: "number", optional: true, max: 5000 } },
			async handler(ctx: Context<{ userId: string; text: string; delayMs?: number }>) {
				// A slow write stays in flight, so tests can start a move across it.
				if (ctx.params.delayMs) await new Promise(r => setTimeout(r, ctx.params.delayMs));
				const row: NoteRow = {
					id: randomUUID(),
					user_id: ctx.params.userId,
					text: ctx.params.text,
					region: this.broker.metadata.region,
					created_at: Date.now()
				};
				await this.db.insertInto("notes").values(row).execute();
				return { id: row.id, region: row.region };
			}
		},
		list: {
			home: { param: "userId", readonly: true },
			params: { $$strict: true, userId: "string" },
			async handler(ctx: Context<{ userId: string }>) {
				return this.db.selectFrom("notes").selectAll().where("user_id", "=", ctx.params.userId).orderBy("created_at").orderBy("id").execute();
			}
		}
	},
	methods: {
		moveExport(userId: string) {
			return this.db.selectFrom("notes").selectAll().where("user_id", "=", userId).execute();
		},
		async moveImport(userId: string, rows: NoteRow[]) {
			// Replace: a retried import must not duplicate what an earlier attempt wrote.
			await this.db.transaction().execute(async trx => {
				await trx.deleteFrom("notes").where("user_id", "=", userId).execute();
				// In chunks: one INSERT of every row would pass SQLite's limit on bound variables.
				for (let i = 0; i < rows.length; i += IMPORT_CHUNK)
					await trx
						.insertInto("notes")
						.values(rows.slice(i, i + IMPORT_CHUNK).map(r => ({ ...r, user_id: userId })))
						.execute();
			});
		},
		async moveCount(userId: string) {
			const r = await this.db
				.selectFrom("notes")
				.select(eb => eb.fn.countAll().as("n"))
				.where("user_id", "=", userId)
				.executeTakeFirst();
			return Number(r?.n ?? 0);
		},
		async moveDelete(userId: string) {
			const r = await this.db.deleteFrom("notes").where("user_id", "=", userId).executeTakeFirst();
			return Number(r.numDeletedRows);
		}
	}
};
