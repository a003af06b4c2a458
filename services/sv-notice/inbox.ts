import { randomUUID } from "node:crypto";
import type { Kysely } from "kysely";
import { sql } from "kysely";
import { isDuplicateKey } from "../../regions/stores/sql.ts";
import type { Category } from "./categories.ts";
import { NoticeNotFoundError } from "./errors.ts";
import type { Rendered } from "./templates.ts";

/**
 * A user's notices, numbered per user: `seq` is one more than the user's last, computed in the
 * statement that inserts the notice, so notices of one user never share a number (two inserts
 * racing on one number: the second meets the key and takes the next). The live stream uses it
 * as the event id, and it moves with the user. A deleted notice keeps its row (marked), so a
 * repeated send of its key is still answered by it, not written again.
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

export interface NewNotice {
	userId: string;
	category: Category;
	template: string;
	rendered: Rendered;
	idempotencyKey: string;
	/** Written as read: a muted category. */
	muted: boolean;
}

export class Inbox {
	readonly db: Kysely<any>;

	constructor(db: Kysely<any>) {
		this.db = db;
	}

	async byKey(userId: string, key: string): Promise<NoticeRow | undefined> {
		return (await this.db.selectFrom("notice_inbox").selectAll().where("user_id", "=", userId).where("idempotency_key", "=", key).executeTakeFirst()) as
			| NoticeRow
			| undefined;
	}

	/** Writes the notice once per key: `added` false when the key had written one already (that one is answered). */
	async add(n: NewNotice): Promise<{ row: NoticeRow; added: boolean }> {
		for (let attempt = 0; ; attempt++) {
			const earlier = await this.byKey(n.userId, n.idempotencyKey);
			if (earlier) return { row: earlier, added: false };
			const now = Date.now();
			const id = randomUUID();
			try {
				await sql`insert into notice_inbox (user_id, seq, id, category, template, locale, title, body_text, body_html, idempotency_key, created_at, read_at)
					select ${n.userId}, coalesce(max(seq), 0) + 1, ${id}, ${n.category}, ${n.template}, ${n.rendered.locale}, ${n.rendered.title}, ${n.rendered.text},
						${n.rendered.html}, ${n.idempotencyKey}, ${now}, ${n.muted ? now : null}
					from notice_inbox where user_id = ${n.userId}`.execute(this.db);
			} catch (err) {
				if (isDuplicateKey(err) && attempt < 5) continue;
				throw err;
			}
			const row = (await this.db.selectFrom("notice_inbox").selectAll().where("id", "=", id).executeTakeFirstOrThrow()) as NoticeRow;
			return { row, added: true };
		}
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
		const r = await this.db
			.selectFrom("notice_inbox")
			.select(eb => eb.fn.countAll().as("n"))
			.where("user_id", "=", userId)
			.where("read_at", "is", null)
			.where("deleted_at", "is", null)
			.executeTakeFirst();
		return Number(r?.n ?? 0);
	}

	async markRead(userId: string, id: string): Promise<void> {
		const found = await this.db
			.selectFrom("notice_inbox")
			.select("read_at")
			.where("user_id", "=", userId)
			.where("id", "=", id)
			.where("deleted_at", "is", null)
			.executeTakeFirst();
		if (!found) throw new NoticeNotFoundError(id);
		if (found.read_at === null)
			await this.db.updateTable("notice_inbox").set({ read_at: Date.now() }).where("user_id", "=", userId).where("id", "=", id).execute();
	}

	async readAll(userId: string): Promise<number> {
		const r = await this.db
			.updateTable("notice_inbox")
			.set({ read_at: Date.now() })
			.where("user_id", "=", userId)
			.where("read_at", "is", null)
			.where("deleted_at", "is", null)
			.executeTakeFirst();
		return Number(r.numUpdatedRows);
	}

	async remove(userId: string, id: string): Promise<void> {
		const r = await this.db
			.updateTable("notice_inbox")
			.set({ deleted_at: Date.now() })
			.where("user_id", "=", userId)
			.where("id", "=", id)
			.where("deleted_at", "is", null)
			.executeTakeFirst();
		if (Number(r.numUpdatedRows) === 0) throw new NoticeNotFoundError(id);
	}
}
