import type { Kysely } from "kysely";
import { isDuplicateKey } from "../../regions/stores/sql.ts";
import { QuotaExceededError } from "./errors.ts";

export interface FileRow {
	id: string;
	user_id: string;
	name: string;
	size: number;
	content_type: string;
	sha256: string;
	created_at: number;
}

/** A file as clients see it. */
export interface FileView {
	id: string;
	name: string;
	size: number;
	contentType: string;
	sha256: string;
	createdAt: string;
}

export function fileView(r: FileRow): FileView {
	return {
		id: r.id,
		name: r.name,
		size: Number(r.size),
		contentType: r.content_type,
		sha256: r.sha256,
		createdAt: new Date(Number(r.created_at)).toISOString()
	};
}

/** Where a file's bytes are in its region's blob store. */
export function blobKey(userId: string, fileId: string): string {
	return `${userId}/${fileId}`;
}

/** A page's position: the last file listed (newest first), as `<createdAt>.<id>`. */
const CURSOR = /^(\d{1,15})\.([0-9a-f-]{36})$/;

/** The rows of files and bytes in use, in the region's SQL store. */
export class FileRows {
	private readonly db: Kysely<any>;

	constructor(db: Kysely<any>) {
		this.db = db;
	}

	async get(userId: string, id: string): Promise<FileRow | undefined> {
		return (await this.db.selectFrom("oss_files").selectAll().where("id", "=", id).where("user_id", "=", userId).executeTakeFirst()) as FileRow | undefined;
	}

	async used(userId: string): Promise<number> {
		const row = await this.db.selectFrom("oss_usage").select("bytes").where("user_id", "=", userId).executeTakeFirst();
		return Number(row?.bytes ?? 0);
	}

	async countOf(userId: string): Promise<number> {
		const row = await this.db
			.selectFrom("oss_files")
			.select(eb => eb.fn.countAll().as("n"))
			.where("user_id", "=", userId)
			.executeTakeFirst();
		return Number(row?.n ?? 0);
	}

	/** Newest first, `limit` at most, after `cursor`; the cursor of the next page when there is one. */
	async page(userId: string, cursor: string | undefined, limit: number): Promise<{ items: FileRow[]; nextCursor: string | null }> {
		let q = this.db.selectFrom("oss_files").selectAll().where("user_id", "=", userId);
		const at = cursor ? CURSOR.exec(cursor) : null;
		if (at) {
			const [createdAt, id] = [Number(at[1]), at[2]!];
			q = q.where(eb => eb.or([eb("created_at", "<", createdAt), eb.and([eb("created_at", "=", createdAt), eb("id", "<", id)])]));
		}
		const rows = await q
			.orderBy("created_at", "desc")
			.orderBy("id", "desc")
			.limit(limit + 1)
			.execute();
		const items = rows.slice(0, limit) as FileRow[];
		const last = items[items.length - 1];
		return { items, nextCursor: rows.length > limit && last ? `${last.created_at}.${last.id}` : null };
	}

	/** Adds the file if its owner's bytes in use stay within `quota`; refuses it whole otherwise. */
	async add(row: FileRow, quota: number): Promise<void> {
		await this.db
			.insertInto("oss_usage")
			.values({ user_id: row.user_id, bytes: 0 })
			.execute()
			.catch(err => {
				if (!isDuplicateKey(err)) throw err;
			});
		const taken = await this.db
			.updateTable("oss_usage")
			.set(eb => ({ bytes: eb("bytes", "+", row.size) }))
			.where("user_id", "=", row.user_id)
			.where(eb => eb(eb("bytes", "+", row.size), "<=", quota))
			.executeTakeFirst();
		if (Number(taken.numUpdatedRows) !== 1) throw new QuotaExceededError(quota, await this.used(row.user_id));
		await this.db.insertInto("oss_files").values(row).execute();
	}

	/** Removes the file's row and gives its bytes back; the row removed, if there was one. */
	async remove(userId: string, id: string): Promise<FileRow | undefined> {
		const row = await this.get(userId, id);
		if (!row) return undefined;
		await this.db.deleteFrom("oss_files").where("id", "=", id).where("user_id", "=", userId).execute();
		await this.db
			.updateTable("oss_usage")
			.set(eb => ({ bytes: eb("bytes", "-", row.size) }))
			.where("user_id", "=", userId)
			.execute();
		return row;
	}

	/** Every row of the user, oldest first (a move's export). */
	async all(userId: string): Promise<FileRow[]> {
		return this.db.selectFrom("oss_files").selectAll().where("user_id", "=", userId).orderBy("created_at").orderBy("id").execute() as Promise<FileRow[]>;
	}

	/** Replaces the user's rows with `rows`, bytes in use counted anew (a move's import). */
	async replace(userId: string, rows: FileRow[]): Promise<void> {
		await this.removeAll(userId);
		for (const row of rows) await this.db.insertInto("oss_files").values(row).execute();
		const bytes = rows.reduce((n, r) => n + Number(r.size), 0);
		if (rows.length) await this.db.insertInto("oss_usage").values({ user_id: userId, bytes }).execute();
	}

	async removeAll(userId: string): Promise<void> {
		await this.db.deleteFrom("oss_files").where("user_id", "=", userId).execute();
		await this.db.deleteFrom("oss_usage").where("user_id", "=", userId).execute();
	}
}
