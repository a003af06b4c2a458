import { randomUUID } from "node:crypto";
import type { Kysely } from "kysely";
import { sql } from "kysely";
import type { SqlDialectName } from "../../regions/stores/sql.ts";
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
	readonly dialect: SqlDialectName;

	constructor(db: Kysely<any>, dialect: SqlDialectName) {
		this.db = db;
		this.dialect = dialect;
	}

	async byKey(userId: string, key: string): Promise<NoticeRow | undefined> {
		return (await this.db.selectFrom("notice_inbox").selectAll().where("user_id", "=", userId).where("idempotency_key", "=", key).executeTakeFirst()) as
			| NoticeRow
			| undefined;
	}

	/**
	 * Writes the notice once per key: `added` false when the key had written one already (that one
	 * is answered). One statement for a new key; a repeated one meets the unique key, then is read.
	 */
	async add(n: NewNotice): Promise<{ row: NoticeRow; added: boolean }> {
		for (let attempt = 0; ; attempt++) {
			const now = Date.now();
			const row: NoticeRow = {
				user_id: n.userId,
				seq: 0,
				id: randomUUID(),
				category: n.category,
				template: n.template,
				locale: n.rendered.locale,
				title: n.rendered.title,
				body_text: n.rendered.text,
				body_html: n.rendered.html,
				idempotency_key: n.idempotencyKey,
				created_at: now,
				read_at: n.muted ? now : null,
				deleted_at: null
			};
			try {
				row.seq = await this.insertNumbered(row);
				return { row, added: true };
			} catch (err) {
				if (!isDuplicateKey(err)) throw err;
				// The key's notice exists (a repeated send), or another write took the number first.
				const earlier = await this.byKey(n.userId, n.idempotencyKey);
				if (earlier) return { row: earlier, added: false };
				if (attempt >= 5) throw err;
			}
		}
	}

	/** Inserts the row as the user's next number and answers that number, in one round trip (MySQL: LAST_INSERT_ID(expr); SQLite: RETURNING). */
	private async insertNumbered(r: NoticeRow): Promise<number> {
		const mysql = this.dialect === "mysql";
		const seq = mysql ? sql`last_insert_id(coalesce(max(seq), 0) + 1)` : sql`coalesce(max(seq), 0) + 1`;
		const res = await sql<{
			seq: number | string;
		}>`insert into notice_inbox (user_id, seq, id, category, template, locale, title, body_text, body_html, idempotency_key, created_at, read_at)
			select ${r.user_id}, ${seq}, ${r.id}, ${r.category}, ${r.template}, ${r.locale}, ${r.title}, ${r.body_text}, ${r.body_html}, ${r.idempotency_key}, ${r.created_at}, ${r.read_at}
			from notice_inbox where user_id = ${r.user_id}${mysql ? sql`` : sql` returning seq`}`.execute(this.db);
		return Number(mysql ? res.insertId : res.rows[0]!.seq);
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

	/** The unread counts of several users in one statement (a user with none is absent). */
	async unreadCounts(userIds: string[]): Promise<Map<string, number>> {
		const rows = await this.db
			.selectFrom("notice_inbox")
			.select(["user_id", eb => eb.fn.countAll().as("n")])
			.where("user_id", "in", userIds)
			.where("read_at", "is", null)
			.where("deleted_at", "is", null)
			.groupBy("user_id")
			.execute();
		return new Map(rows.map(r => [r.user_id as string, Number(r.n)]));
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
