import { randomUUID } from "node:crypto";
import type { CompiledQuery, Kysely } from "kysely";
import { sql } from "kysely";
import type { StatementGroups } from "../../regions/stores/grouped-transaction.ts";
import type { SqlDialectName } from "../../regions/stores/sql.ts";
import { isDuplicateKey } from "../../regions/stores/sql.ts";
import type { Category, DeliveryChannel, ExternalChannel } from "./categories.ts";
import { EXTERNAL_CHANNELS } from "./categories.ts";
import type { NoticeRow } from "./inbox.ts";
import { Inbox, noticeView } from "./inbox.ts";
import type { PushedNotice, Queued } from "./outbox.ts";
import { outboxRows, pushOf } from "./outbox.ts";
import type { Preferences } from "./preferences.ts";
import { preferencesOf } from "./preferences.ts";
import type { Delivery } from "./providers.ts";
import type { Tally } from "./tallies.ts";
import { TALLIES, tallyUpsert } from "./tallies.ts";
import type { Rendered } from "./templates.ts";
import { render } from "./templates.ts";

/**
 * Sends written as a set: however many, a fixed handful of statements on a transaction the
 * caller holds (fenced): the users' preferences, last numbers and unread counts, read in one
 * (sendFactsQuery, which the caller sends with its own reads); then, sent together as one group
 * (regions/stores/grouped-transaction.ts), one insert of the new notices, one upsert of their
 * users' tallies (tallies.ts) and one of their outbox messages (e-mail and webhooks the user did
 * not turn off, and the live push unless the caller sends it), the insert first, so that when it
 * fails nothing after it runs. A repeated key is found by the insert (the unique key): a send
 * costs no lookup first. Then the keys are read, and a key written already (or by an earlier send of the
 * set) is answered by its notice, even where its data no longer renders; data that does not
 * render refuses that send alone, before anything of it is written. The reads
 * are a snapshot: a notice another transaction numbered or keyed since makes the insert fail
 * whole on a duplicate key, and the caller runs the set again in a new one. With `pushNow` the
 * caller broadcasts each live push itself as the transaction commits (`push`) rather than the
 * relay: an outbox row would not make it surer (the relay, too, counts a push sent once handed
 * to NATS, which a crash can still lose; a stream resuming after its last `seq` reads the inbox),
 * and would cost the batch a round trip and a delete.
 */

export interface SendRequest {
	userId: string;
	category: Category;
	template: string;
	data: Record<string, unknown>;
	idempotencyKey: string;
	channels?: DeliveryChannel[];
}

export interface SendOutcome {
	row: NoticeRow;
	replayed: boolean;
	/** The live push for the caller to send once committed (`pushNow`). */
	push?: PushedNotice;
	/** Messages were queued for the relay. */
	relayed: boolean;
}

export type Written = { kind: "done"; outcome: SendOutcome } | { kind: "failed"; error: unknown };

export interface SendTarget {
	region: string;
	/** The store's SQL dialect (tallies are upserted). */
	dialect: SqlDialectName;
	/** Whether the channel has a provider here. */
	configured: (channel: ExternalChannel) => boolean;
}

const keyOf = (userId: string, key: string) => `${userId}\u0000${key}`;

/** What a set of sends is written from: its users' preferences, last numbers and unread counts. */
export interface SendFacts {
	prefs: Map<string, Preferences>;
	tallies: Map<string, Tally>;
}

/** The users' preferences, last numbers and unread counts, as one statement to send with others; `sendFactsOf` reads it. */
export function sendFactsQuery(db: Kysely<any>, users: readonly string[]): CompiledQuery {
	const nothing = sql<any>`null`;
	return db
		.selectFrom("notice_preferences")
		.select(["user_id", "locale", "opt_outs", nothing.as("last"), nothing.as("unread")])
		.where("user_id", "in", users)
		.unionAll(
			db
				.selectFrom(TALLIES)
				.select(["user_id", nothing.as("locale"), nothing.as("opt_outs"), "last_seq as last", "unread"])
				.where("user_id", "in", users)
		)
		.compile();
}

/** The rows of `sendFactsQuery`, each user with its preferences (the defaults where it set none) and tally. */
export function sendFactsOf(users: readonly string[], rows: readonly any[]): SendFacts {
	const chosen = new Map(rows.filter(r => r.opt_outs !== null).map(r => [r.user_id as string, r as { locale: string | null; opt_outs: string }]));
	return {
		prefs: new Map(users.map(user => [user, preferencesOf(chosen.get(user))])),
		tallies: new Map(rows.filter(r => r.opt_outs === null).map(r => [r.user_id as string, { last: Number(r.last), unread: Number(r.unread) }]))
	};
}

/**
 * Writes the set on the transaction `groups` sends to (`db` builds its statements), ending it:
 * the writes go with its COMMIT where the transaction is the caller's own (send-batches.ts).
 */
export async function writeSends(
	db: Kysely<any>,
	groups: StatementGroups,
	reqs: readonly SendRequest[],
	facts: SendFacts,
	target: SendTarget,
	pushNow: boolean
): Promise<Written[]> {
	const inbox = new Inbox(db);
	const byKeys = async () => (await groups.run([inbox.byKeysQuery(reqs.map(r => ({ userId: r.userId, key: r.idempotencyKey })))]))[0]!.rows as NoticeRow[];
	const { prefs, tallies } = facts;
	const now = Date.now();

	/** The set's rows and answers, given the notices its keys are known to have written. */
	const plan = (earlier: readonly NoticeRow[]) => {
		const known = new Map(earlier.map(row => [keyOf(row.user_id, row.idempotency_key), row]));
		const counted = new Map([...tallies].map(([user, t]) => [user, { ...t }]));
		const rows: NoticeRow[] = [];
		const queued: { userId: string; messages: Queued[] }[] = [];
		let refused = false;
		const written = reqs.map((req): Written => {
			const key = keyOf(req.userId, req.idempotencyKey);
			const seen = known.get(key);
			if (seen) return { kind: "done", outcome: { row: seen, replayed: true, relayed: false } };
			const { locale, channels } = prefs.get(req.userId)!;
			let rendered: Rendered;
			try {
				rendered = render(req.category, req.template, req.data, locale);
			} catch (error) {
				refused = true;
				return { kind: "failed", error };
			}
			const wanted = (channel: DeliveryChannel) => (req.channels ? req.channels.includes(channel) : true) && channels[channel][req.category];
			const muted = req.category !== "security" && !wanted("inbox");
			const tally = counted.get(req.userId) ?? { last: 0, unread: 0 };
			counted.set(req.userId, tally);
			tally.last++;
			if (!muted) tally.unread++;
			const row: NoticeRow = {
				user_id: req.userId,
				seq: tally.last,
				id: randomUUID(),
				category: req.category,
				template: req.template,
				locale: rendered.locale,
				title: rendered.title,
				body_text: rendered.text,
				body_html: rendered.html,
				idempotency_key: req.idempotencyKey,
				created_at: now,
				read_at: muted ? now : null,
				deleted_at: null
			};
			rows.push(row);
			known.set(key, row);
			const view = noticeView(row);
			const messages: Queued[] = muted || pushNow ? [] : [pushOf(req.userId, view)];
			const delivery: Delivery = {
				noticeId: row.id,
				userId: req.userId,
				category: req.category,
				title: rendered.title,
				text: rendered.text,
				html: rendered.html,
				createdAt: view.createdAt
			};
			for (const channel of EXTERNAL_CHANNELS)
				if (target.configured(channel) && wanted(channel)) messages.push({ channel: `notice.${channel}`, payload: delivery });
			queued.push({ userId: req.userId, messages });
			const push = !muted && pushNow ? { userId: req.userId, unreadCount: tally.unread, notice: view } : undefined;
			return { kind: "done", outcome: { row, replayed: false, push, relayed: messages.length > 0 } };
		});
		const tallied = [...counted].flatMap(([userId, t]) => {
			const before = tallies.get(userId) ?? { last: 0, unread: 0 };
			return t.last > before.last ? [{ userId, last: t.last, unread: t.unread - before.unread }] : [];
		});
		return { rows, queued, written, refused, tallied };
	};

	let earlier: NoticeRow[] | undefined;
	for (;;) {
		const set = plan(earlier ?? []);
		// A send whose data does not render may repeat one that did: its notice answers it.
		if (set.refused && !earlier) {
			earlier = await byKeys();
			continue;
		}
		const outbox = outboxRows(target.region, now, set.queued);
		const writes = [
			inbox.insertQuery(set.rows),
			tallyUpsert(db, target.dialect, set.tallied),
			outbox.length ? db.insertInto("notice_outbox").values(outbox).compile() : undefined
		].filter(q => q !== undefined);
		try {
			// The insert comes first: when it meets a key, nothing after it runs, the COMMIT included.
			await groups.runAndCommit(writes);
			return set.written;
		} catch (err) {
			if (earlier || !isDuplicateKey(err)) throw err;
			earlier = await byKeys();
		}
	}
}
