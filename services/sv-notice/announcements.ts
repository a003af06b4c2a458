import type { Kysely } from "kysely";
import type { OutboxRow } from "../../mixins/channels/sql-outbox-relay.ts";
import type { Env } from "../../regions/runtime/env.ts";
import { EnvError, envInt } from "../../regions/runtime/env.ts";

/**
 * Announcements: the region where one is made keeps what it says and where it goes
 * (`notice_announcements`); each region it goes to keeps its run (`notice_announcement_runs`):
 * the last user id notified and the counts, advanced together after each page of users, so a
 * node that stops picks the run up after the last page it finished. A user of the unfinished
 * page is sent to again under the same idempotency key, which writes nothing twice. A send that
 * fails is tried again with back-off (`retried`); one that still fails is counted as failed, its
 * error kept with the run (`notice_announcement_failures`, written with the page's counts) and
 * shown, by error type, in the run's progress.
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

/** The failed sends of a run of one error type: how many users, and the latest message. */
export interface FailureReason {
	type: string;
	message: string;
	users: number;
}

export interface RunProgress {
	targeted: number;
	written: number;
	pushed: number;
	failed: number;
	done: boolean;
	/** Why sends failed, the commonest first (at most MAX_REASONS types). */
	failures: FailureReason[];
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

/** A user of a page whose send failed for good. */
export interface FailedSend {
	userId: string;
	type: string;
	message: string;
	attempts: number;
}

/** What one page of users came to. */
export interface PageOutcome {
	lastUserId: string;
	written: number;
	pushed: number;
	failed: FailedSend[];
}

/** Error types a run's progress lists. */
const MAX_REASONS = 10;
/** Characters of an error's message kept. */
const MAX_MESSAGE = 500;

const progressOf = (r: RunRow, failures: FailureReason[]): RunProgress => ({
	targeted: Number(r.targeted),
	written: Number(r.written),
	pushed: Number(r.pushed),
	failed: Number(r.failed),
	done: Number(r.done) === 1,
	failures
});

/** How a send of the fan-out is tried again: `attempts` in all, the first wait `firstDelayMs`, doubling, with jitter. */
export interface RetryPolicy {
	attempts: number;
	firstDelayMs: number;
}

/**
 * The retry policy from EDGEHOME_NOTICE_ANNOUNCE_ATTEMPTS (default 5) and _RETRY_MS (default 200).
 * A page waits for its slowest user, so its longest wait must stay well inside the run's hold
 * (`leaseMs`), or another node would take the run over while this one still works on it.
 */
export function retryPolicyFromEnv(env: Env, leaseMs: number): RetryPolicy {
	const policy = {
		attempts: envInt(env, "EDGEHOME_NOTICE_ANNOUNCE_ATTEMPTS", 5, 1, 20),
		firstDelayMs: envInt(env, "EDGEHOME_NOTICE_ANNOUNCE_RETRY_MS", 200, 1, 60_000)
	};
	const longest = longestWaitMs(policy);
	if (longest * 2 > leaseMs)
		throw new EnvError(
			"EDGEHOME_NOTICE_ANNOUNCE_RETRY_MS",
			String(policy.firstDelayMs),
			`retries of ${longest} ms at most, under half of EDGEHOME_NOTICE_ANNOUNCE_LEASE_MS (${leaseMs} ms)`
		);
	return policy;
}

/** The most a send can wait between its attempts. */
export const longestWaitMs = (p: RetryPolicy) => p.firstDelayMs * (2 ** (p.attempts - 1) - 1);

/** A refusal that waiting does not heal: the caller's mistake (4xx), but a user in the middle of a move, which ends. */
export function healsByWaiting(err: { code?: number; type?: string }): boolean {
	return !(err.code && err.code >= 400 && err.code < 500 && err.type !== "USER_MOVING");
}

/**
 * `send` tried up to `policy.attempts` times while it fails with an error that waiting may heal,
 * waiting between attempts (doubling from the first delay, each wait cut to between half and all
 * of it, so that the users of a page that failed together do not come back together).
 */
export async function retried<T>(
	send: () => Promise<T>,
	policy: RetryPolicy,
	wait: (ms: number) => Promise<unknown>
): Promise<{ value: T } | { error: { type: string; message: string }; attempts: number }> {
	for (let attempt = 1; ; attempt++) {
		try {
			return { value: await send() };
		} catch (err) {
			const e = err as { code?: number; type?: string; name?: string; message?: string };
			if (attempt >= policy.attempts || !healsByWaiting(e))
				return { error: { type: String(e.type ?? e.name ?? "Error"), message: String(e.message ?? err).slice(0, MAX_MESSAGE) }, attempts: attempt };
			const full = policy.firstDelayMs * 2 ** (attempt - 1);
			await wait(full / 2 + Math.random() * (full / 2));
		}
	}
}

export class Announcements {
	readonly db: Kysely<any>;
	/** How long a node holds a run it works on, renewed with each page: a run a node left without giving it back is taken over after it. */
	readonly leaseMs: number;

	constructor(db: Kysely<any>, leaseMs: number) {
		this.db = db;
		this.leaseMs = leaseMs;
	}

	/**
	 * Records `a` together with the outbox rows that take it to each region (outbox.ts's
	 * `announcementRows`): a node that dies once this returned still has it sent, by its own relay on
	 * restart or another node's, and one that dies before made nothing.
	 */
	async record(a: Announced, regions: string[], now: number, outbox: readonly OutboxRow[]): Promise<void> {
		await this.db.transaction().execute(async trx => {
			await trx
				.insertInto("notice_announcements")
				.values({ id: a.id, title: a.title, body: a.body, regions: JSON.stringify(regions), created_at: now })
				.execute();
			await trx.insertInto("notice_outbox").values(outbox).execute();
		});
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

	/** Moves the cursor past a finished page, adds its counts and keeps its failures, together; renews the lease. */
	async advance(id: string, page: PageOutcome, now: number): Promise<void> {
		const record = async (db: Kysely<any>) => {
			if (page.failed.length)
				// A page done twice (its node was taken for dead and another took the run over) keeps the first failures.
				await db
					.insertInto("notice_announcement_failures")
					.ignore()
					.values(page.failed.map(f => ({ run_id: id, user_id: f.userId, type: f.type, message: f.message, attempts: f.attempts, failed_at: now })))
					.execute();
			await db
				.updateTable("notice_announcement_runs")
				.set(eb => ({
					last_user_id: page.lastUserId,
					written: eb("written", "+", page.written),
					pushed: eb("pushed", "+", page.pushed),
					failed: eb("failed", "+", page.failed.length),
					claimed_until: now + this.leaseMs
				}))
				.where("id", "=", id)
				.execute();
		};
		// One statement needs no transaction (SQLite's single connection stays free for the fenced writes).
		if (page.failed.length) await this.db.transaction().execute(record);
		else await record(this.db);
	}

	async finish(id: string): Promise<void> {
		await this.db.updateTable("notice_announcement_runs").set({ done: 1, claimed_until: 0 }).where("id", "=", id).execute();
	}

	/** Gives a run back unfinished (the node stops), for another node or the next start. */
	async release(id: string): Promise<void> {
		await this.db.updateTable("notice_announcement_runs").set({ claimed_until: 0 }).where("id", "=", id).execute();
	}

	async status(id: string): Promise<AnnouncementStatus> {
		const [a, run, reasons] = await Promise.all([
			this.db.selectFrom("notice_announcements").selectAll().where("id", "=", id).executeTakeFirst(),
			this.db.selectFrom("notice_announcement_runs").selectAll().where("id", "=", id).executeTakeFirst(),
			this.failureReasons(id)
		]);
		return {
			announcement: a
				? { id: a.id, title: a.title, regions: JSON.parse(a.regions) as string[], createdAt: new Date(Number(a.created_at)).toISOString() }
				: null,
			run: run ? progressOf(run as RunRow, reasons) : null
		};
	}

	/** The run's failures by error type, the commonest first, each with its latest message. */
	private async failureReasons(id: string): Promise<FailureReason[]> {
		const byType = await this.db
			.selectFrom("notice_announcement_failures")
			.select(["type", eb => eb.fn.countAll().as("users")])
			.where("run_id", "=", id)
			.groupBy("type")
			.orderBy("users", "desc")
			.orderBy("type")
			.limit(MAX_REASONS)
			.execute();
		return Promise.all(
			byType.map(async r => {
				const latest = await this.db
					.selectFrom("notice_announcement_failures")
					.select("message")
					.where("run_id", "=", id)
					.where("type", "=", r.type)
					.orderBy("failed_at", "desc")
					.limit(1)
					.executeTakeFirstOrThrow();
				return { type: r.type as string, message: latest.message as string, users: Number(r.users) };
			})
		);
	}
}
