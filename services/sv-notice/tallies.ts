import type { CompiledQuery, Kysely } from "kysely";
import { sql } from "kysely";
import type { SqlDialectName } from "../../regions/stores/sql.ts";

/**
 * Each user's last notice number and unread count, kept beside the inbox in the transaction that
 * changes it: a send reads two numbers instead of counting the user's notices, whose cost grows
 * with the inbox. Unread counts move by differences, so a read and a send of one user committing
 * side by side add up rather than one overwriting the other; the last number only grows.
 */

export const TALLIES = "notice_tallies";

export interface Tally {
	last: number;
	unread: number;
}

/** What a set of sends adds to a user's tally: its new last number, and the unread notices among them. */
export interface TallyChange {
	userId: string;
	last: number;
	unread: number;
}

/** The upsert that adds `changes` to their users' tallies, to send with the batch's other writes; none when nothing changes. */
export function tallyUpsert(db: Kysely<any>, dialect: SqlDialectName, changes: readonly TallyChange[]): CompiledQuery | undefined {
	if (!changes.length) return undefined;
	const insert = db.insertInto(TALLIES).values(changes.map(c => ({ user_id: c.userId, last_seq: c.last, unread: c.unread })));
	return (
		dialect === "mysql"
			? insert.onDuplicateKeyUpdate({ last_seq: sql`greatest(last_seq, values(last_seq))`, unread: sql`unread + values(unread)` })
			: insert.onConflict(oc =>
					oc.column("user_id").doUpdateSet({
						last_seq: sql`max(${sql.ref(`${TALLIES}.last_seq`)}, excluded.last_seq)`,
						unread: sql`${sql.ref(`${TALLIES}.unread`)} + excluded.unread`
					})
				)
	).compile();
}

/** Notices of the user read or deleted unread (a negative `delta`). */
export async function changeUnread(db: Kysely<any>, userId: string, delta: number): Promise<void> {
	if (delta)
		await db
			.updateTable(TALLIES)
			.set({ unread: sql`unread + ${delta}` })
			.where("user_id", "=", userId)
			.execute();
}

/** The unread counts of several users in one statement (a user without notices is absent). */
export async function unreadOf(db: Kysely<any>, userIds: readonly string[]): Promise<Map<string, number>> {
	if (!userIds.length) return new Map();
	const rows = await db.selectFrom(TALLIES).select(["user_id", "unread"]).where("user_id", "in", userIds).execute();
	return new Map(rows.map(r => [r.user_id as string, Number(r.unread)]));
}

/** The user's tally counted again from the inbox: after the inbox arrived in a move. */
export async function recountTally(db: Kysely<any>, userId: string): Promise<void> {
	await dropTally(db, userId);
	await db
		.insertInto(TALLIES)
		.columns(["user_id", "last_seq", "unread"])
		.expression(
			db
				.selectFrom("notice_inbox")
				.select([
					"user_id",
					eb => eb.fn.max("seq").as("last_seq"),
					sql<number>`sum(case when read_at is null and deleted_at is null then 1 else 0 end)`.as("unread")
				])
				.where("user_id", "=", userId)
				.groupBy("user_id")
		)
		.execute();
}

export async function dropTally(db: Kysely<any>, userId: string): Promise<void> {
	await db.deleteFrom(TALLIES).where("user_id", "=", userId).execute();
}
