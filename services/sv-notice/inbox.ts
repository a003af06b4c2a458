import type { CompiledQuery, Kysely } from "kysely";
import type { Category } from "./categories.ts";
import { NoticeNotFoundError } from "./errors.ts";
import { changeUnread, unreadOf } from "./tallies.ts";

/**
 * A user's notices, numbered per user: `seq` is one more than the user's last, read in the
 * transaction that inserts the notice; `(user_id, seq)` is the key, so two writes racing on one
 * number cannot both commit (the later meets the key and runs again, sends.ts). The live stream
 * uses it as the event id, and it moves with the user. A deleted notice keeps its row (marked), so a
 * repeated send of its key is still answered by it, not written again. Reading and deleting keep
 * the user's unread count (tallies.ts) in the same transaction.
 */

export interface NoticeRow {
	user_id: string;
	seq: number | string;
	id: string;
	category: Category;
	template: string;
	locale: string;
	title: string;
	body_text: string;
	body_html: string;
	idempotency_key: string;
	created_at: number | string;
	read_at: number | string | null;
	deleted_at: number | string | null;
}

export interface NoticeView {
	id: string;
	seq: number;
	category: Category;
	title: string;
	text: string;
	html: string;
	read: boolean;
	createdAt: string;
}

export function noticeView(row: NoticeRow): NoticeView {
	return {
		id: row.id,
		seq: Number(row.seq),
		category: row.category,
		title: row.title,
		text: row.body_text,
		html: row.body_html,
		read: row.read_at !== null,
		createdAt: new Date(Number(row.created_at)).toISOString()
	};
}

export class Inbox {
	readonly db: Kysely<any>;

	constructor(db: Kysely<any>) {
		this.db = db;
	}

	/** The notices some sends' keys wrote already (`pairs` of user and key), as a statement to send with others. */
	byKeysQuery(pairs: readonly { userId: string; key: string }[]): CompiledQuery {
		return this.db
			.selectFrom("notice_inbox")
			.selectAll()
			.where(eb => eb.or(pairs.map(p => eb.and([eb("user_id", "=", p.userId), eb("idempotency_key", "=", p.key)]))))
			.compile();
	}

	/** Numbered notices in one statement, to send with others: a number or key taken meanwhile fails it whole (a duplicate key). */
	insertQuery(rows: readonly NoticeRow[]): CompiledQuery | undefined {
		return rows.length ? this.db.insertInto("notice_inbox").values(rows).compile() : undefined;
	}

	async list(userId: string, opts: { unread?: boolean; before?: number; limit: number }): Promise<NoticeRow[]> {
		let q = this.db.selectFrom("notice_inbox").selectAll().where("user_id", "=", userId).where("deleted_at", "is", null);
		if (opts.unread) q = q.where("read_at", "is", null);
		if (opts.before !== undefined) q = q.where("seq", "<", opts.before);
		return (await q.orderBy("seq", "desc").limit(opts.limit).execute()) as NoticeRow[];
	}

	/** The user's notices after `seq`, oldest first: what a live stream resuming from `seq` missed. */
	async since(userId: string, seq: number, limit: number): Promise<NoticeRow[]> {
		return (await this.db
			.selectFrom("notice_inbox")
			.selectAll()
			.where("user_id", "=", userId)
			.where("seq", ">", seq)
			.where("deleted_at", "is", null)
			.orderBy("seq", "asc")
			.limit(limit)
			.execute()) as NoticeRow[];
	}

	async unreadCount(userId: string): Promise<number> {
		return (await unreadOf(this.db, [userId])).get(userId) ?? 0;
	}

	/** The unread counts of several users in one statement (a user with none is absent). */
	unreadCounts(userIds: string[]): Promise<Map<string, number>> {
		return unreadOf(this.db, userIds);
	}

	async markRead(userId: string, id: string): Promise<void> {
		if (!(await this.unreadShown(userId, id))) return;
		await this.db.updateTable("notice_inbox").set({ read_at: Date.now() }).where("user_id", "=", userId).where("id", "=", id).execute();
		await changeUnread(this.db, userId, -1);
	}

	async readAll(userId: string): Promise<number> {
		const r = await this.db
			.updateTable("notice_inbox")
			.set({ read_at: Date.now() })
			.where("user_id", "=", userId)
			.where("read_at", "is", null)
			.where("deleted_at", "is", null)
			.executeTakeFirst();
		const marked = Number(r.numUpdatedRows);
		await changeUnread(this.db, userId, -marked);
		return marked;
	}

	async remove(userId: string, id: string): Promise<void> {
		const unread = await this.unreadShown(userId, id);
		await this.db.updateTable("notice_inbox").set({ deleted_at: Date.now() }).where("user_id", "=", userId).where("id", "=", id).execute();
		if (unread) await changeUnread(this.db, userId, -1);
	}

	/** Whether the user's notice, not deleted, is unread; NOTICE_NOT_FOUND when there is no such notice. */
	private async unreadShown(userId: string, id: string): Promise<boolean> {
		const found = await this.db
			.selectFrom("notice_inbox")
			.select("read_at")
			.where("user_id", "=", userId)
			.where("id", "=", id)
			.where("deleted_at", "is", null)
			.executeTakeFirst();
		if (!found) throw new NoticeNotFoundError(id);
		return found.read_at === null;
	}
}
