import type { Kysely } from "kysely";
import { dropTally, recountTally } from "./tallies.ts";

/**
 * A user's notices as a move carries them: the inbox (numbers kept, so a live stream resumes
 * where it was), the preferences, and one bundle of the deliveries not handed on yet. The bundle
 * counts as one row whatever the relay sends meanwhile, so the mover's counts agree. The tally
 * (tallies.ts) is not carried: the new home counts it from the notices it received.
 */

interface ExportedRow {
	t: "n" | "p" | "w";
	r: Record<string, unknown>;
}

/** Rows per insert statement of an import. */
const IMPORT_CHUNK = 200;

export class NoticeMoves {
	private readonly db: Kysely<any>;

	constructor(db: Kysely<any>) {
		this.db = db;
	}

	async export(userId: string): Promise<ExportedRow[]> {
		const notices = await this.db.selectFrom("notice_inbox").selectAll().where("user_id", "=", userId).orderBy("seq").execute();
		const prefs = await this.db.selectFrom("notice_preferences").selectAll().where("user_id", "=", userId).execute();
		const outbox = await this.db
			.selectFrom("notice_outbox")
			.select(["channel", "msg_key", "region", "payload", "created_at"])
			.where("owner_id", "=", userId)
			.orderBy("id")
			.execute();
		const rows: ExportedRow[] = [...notices.map(r => ({ t: "n" as const, r })), ...prefs.map(r => ({ t: "p" as const, r }))];
		if (rows.length) rows.push({ t: "w", r: { outbox } });
		return rows;
	}

	async count(userId: string): Promise<number> {
		const n = async (table: string) =>
			Number(
				(
					await this.db
						.selectFrom(table)
						.select(eb => eb.fn.countAll().as("n"))
						.where("user_id", "=", userId)
						.executeTakeFirst()
				)?.n ?? 0
			);
		const rows = (await n("notice_inbox")) + (await n("notice_preferences"));
		return rows + (rows > 0 ? 1 : 0);
	}

	async remove(userId: string): Promise<number> {
		const counted = await this.count(userId);
		await this.db.deleteFrom("notice_inbox").where("user_id", "=", userId).execute();
		await this.db.deleteFrom("notice_preferences").where("user_id", "=", userId).execute();
		await this.db.deleteFrom("notice_outbox").where("owner_id", "=", userId).execute();
		await dropTally(this.db, userId);
		return counted;
	}

	/** Replaces whatever a retried import left with `rows`. */
	async import(userId: string, rows: unknown[]): Promise<void> {
		await this.remove(userId);
		const notices: Record<string, unknown>[] = [];
		for (const { t, r } of rows as ExportedRow[]) {
			if (t === "n") notices.push({ ...r, user_id: userId });
			else if (t === "p")
				await this.db
					.insertInto("notice_preferences")
					.values({ ...r, user_id: userId })
					.execute();
			else {
				const outbox = (r as { outbox: Record<string, unknown>[] }).outbox;
				if (outbox.length)
					await this.db
						.insertInto("notice_outbox")
						.values(outbox.map(m => ({ ...m, owner_id: userId, claimed_until: 0 })))
						.execute();
			}
		}
		for (let i = 0; i < notices.length; i += IMPORT_CHUNK)
			await this.db
				.insertInto("notice_inbox")
				.values(notices.slice(i, i + IMPORT_CHUNK))
				.execute();
		await recountTally(this.db, userId);
	}
}
