import type { Kysely } from "kysely";

/**
 * Announcements: the region where one is made keeps what it says and where it goes
 * (`notice_announcements`); each region it goes to keeps its run (`notice_announcement_runs`):
 * the last user id notified and the counts, advanced together after each page of users, so a
 * node that stops picks the run up after the last page it finished. A user of the unfinished
 * page is sent to again under the same idempotency key, which writes nothing twice.
 */

/** Announcement limits (characters). */
export const MAX_TITLE = 200;
export const MAX_BODY = 5000;

/** What reaches each targeted region through the durable channel. */
export interface Announced {
	id: string;
	title: string;
	body: string;
}

export interface RunProgress {
	targeted: number;
	written: number;
	pushed: number;
	failed: number;
	done: boolean;
}

export interface AnnouncementStatus {
	announcement: { id: string; title: string; regions: string[]; createdAt: string } | null;
	run: RunProgress | null;
}

interface RunRow {
	id: string;
	title: string;
	body: string;
	last_user_id: string;
	targeted: number | string;
	written: number | string;
	pushed: number | string;
	failed: number | string;
	done: number | string;
}

/** What one page of users came to. */
export interface PageOutcome {
	lastUserId: string;
	written: number;
	pushed: number;
	failed: number;
}

const progressOf = (r: RunRow): RunProgress => ({
	targeted: Number(r.targeted),
	written: Number(r.written),
	pushed: Number(r.pushed),
	failed: Number(r.failed),
	done: Number(r.done) === 1
});

export class Announcements {
	readonly db: Kysely<any>;
	/** How long a node holds a run it works on, renewed with each page: a run a node left without giving it back is taken over after it. */
	readonly leaseMs: number;

	constructor(db: Kysely<any>, leaseMs: number) {
		this.db = db;
		this.leaseMs = leaseMs;
	}

	async record(a: Announced, regions: string[], now: number): Promise<void> {
		await this.db
			.insertInto("notice_announcements")
			.values({ id: a.id, title: a.title, body: a.body, regions: JSON.stringify(regions), created_at: now })
			.execute();
	}

	/** This region's run of `a`, begun once however often the message arrives; targeted is the region's users now. */
	async begin(a: Announced, now: number): Promise<void> {
		const r = await this.db
			.selectFrom("users")
			.select(eb => eb.fn.countAll().as("n"))
			.executeTakeFirst();
		await this.db
			.insertInto("notice_announcement_runs")
			.ignore()
			.values({ id: a.id, title: a.title, body: a.body, targeted: Number(r?.n ?? 0), created_at: now })
			.execute();
	}

	/** Takes an unfinished run no live node holds, for LEASE_MS. */
	async claim(now: number): Promise<(Announced & { cursor: string }) | undefined> {
		const open = (await this.db
			.selectFrom("notice_announcement_runs")
			.selectAll()
			.where("done", "=", 0)
			.where("claimed_until", "<", now)
			.orderBy("created_at")
			.limit(1)
			.executeTakeFirst()) as RunRow | undefined;
		if (!open) return undefined;
		const taken = await this.db
			.updateTable("notice_announcement_runs")
			.set({ claimed_until: now + this.leaseMs })
			.where("id", "=", open.id)
			.where("claimed_until", "<", now)
			.executeTakeFirst();
		return Number(taken.numUpdatedRows) === 1 ? { id: open.id, title: open.title, body: open.body, cursor: open.last_user_id } : undefined;
	}

	/** The region's next user ids after `cursor`, in id order. */
	async usersAfter(cursor: string, limit: number): Promise<string[]> {
		const rows = await this.db.selectFrom("users").select("id").where("id", ">", cursor).orderBy("id").limit(limit).execute();
		return rows.map(r => r.id as string);
	}

	/** Moves the cursor past a finished page and adds its counts, in one statement; renews the lease. */
	async advance(id: string, page: PageOutcome, now: number): Promise<void> {
		await this.db
			.updateTable("notice_announcement_runs")
			.set(eb => ({
				last_user_id: page.lastUserId,
				written: eb("written", "+", page.written),
				pushed: eb("pushed", "+", page.pushed),
				failed: eb("failed", "+", page.failed),
				claimed_until: now + this.leaseMs
			}))
			.where("id", "=", id)
			.execute();
	}

	async finish(id: string): Promise<void> {
		await this.db.updateTable("notice_announcement_runs").set({ done: 1, claimed_until: 0 }).where("id", "=", id).execute();
	}

	/** Gives a run back unfinished (the node stops), for another node or the next start. */
	async release(id: string): Promise<void> {
		await this.db.updateTable("notice_announcement_runs").set({ claimed_until: 0 }).where("id", "=", id).execute();
	}

	async status(id: string): Promise<AnnouncementStatus> {
		const [a, run] = await Promise.all([
			this.db.selectFrom("notice_announcements").selectAll().where("id", "=", id).executeTakeFirst(),
			this.db.selectFrom("notice_announcement_runs").selectAll().where("id", "=", id).executeTakeFirst()
		]);
		return {
			announcement: a
				? { id: a.id, title: a.title, regions: JSON.parse(a.regions) as string[], createdAt: new Date(Number(a.created_at)).toISOString() }
				: null,
			run: run ? progressOf(run as RunRow) : null
		};
	}
}
