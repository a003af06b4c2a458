import { randomUUID } from "node:crypto";
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { Errors } from "moleculer";
import { regionId, userId } from "../../kernel/fields.ts";
import type { ChannelDelivery } from "../../mixins/channels/declaration.ts";
import { OutboxRelay } from "../../mixins/channels/sql-outbox-relay.ts";
import type { DbVars } from "../../mixins/db.mixin.ts";
import { dbMixin } from "../../mixins/db.mixin.ts";
import { metricsMixin } from "../../mixins/metrics.mixin.ts";
import type { MoveParticipantMethods } from "../../mixins/move-participant.mixin.ts";
import { moveParticipantMixin, movesThrough } from "../../mixins/move-participant.mixin.ts";
import type { HomeMeta } from "../../regions/home-router.ts";
import { envInt } from "../../regions/runtime/env.ts";
import { regionRuntimeOf } from "../../regions/runtime/region-runtime.ts";
import { sequentialGroups } from "../../regions/stores/grouped-transaction.ts";
import { scopeOf, unscoped } from "../../regions/stores/scoped-db.ts";
import { isDuplicateKey } from "../../regions/stores/sql.ts";
import { UnknownRegionError } from "../sv-region/errors.ts";
import type { Announced, AnnouncementStatus, PageOutcome, RetryPolicy } from "./announcements.ts";
import { Announcements, healsByWaiting, MAX_BODY, MAX_TITLE, retried, retryPolicyFromEnv } from "./announcements.ts";
import type { ExternalChannel, Locale } from "./categories.ts";
import { CATEGORIES, CHANNELS, LOCALES } from "./categories.ts";
import { AnnouncementNotFoundError } from "./errors.ts";
import { Inbox, noticeView } from "./inbox.ts";
import { migrations } from "./migrations.ts";
import { NoticeMoves } from "./moves.ts";
import type { PushedNotice, Queued, QueuedPush } from "./outbox.ts";
import { announcementRows, outboxRows, PUSH, pushOf } from "./outbox.ts";
import type { Preferences } from "./preferences.ts";
import { PreferenceStore } from "./preferences.ts";
import type { Delivery, Providers } from "./providers.ts";
import { providersFromEnv } from "./providers.ts";
import type { BatchedSend } from "./send-batches.ts";
import { SendBatches } from "./send-batches.ts";
import type { SendOutcome, SendRequest, SendTarget } from "./sends.ts";
import { sendFactsOf, sendFactsQuery, writeSends } from "./sends.ts";
import { UnreadCounts } from "./unread-counts.ts";

/** The channel producers send notices through: `{ userId, category, template, data, idempotencyKey, channels? }`. */
export const SEND_CHANNEL = "notice.send";
/** The channel an announcement reaches each region it goes to through: `{ id, title, body }`. */
export const ANNOUNCE_CHANNEL = "notice.announce";
/**
 * The global event every region's gateways hear: `{ pushes }`, each a notice or a new unread count for
 * a user's live streams. A committed batch of sends is one event, however many users it reaches: one
 * message (and one signature) per gateway node rather than one per notice.
 */
export const PUSH_EVENT = "notice.pushed";
export type { PushedNotice };
export interface Pushes {
	pushes: PushedNotice[];
}

interface Vars extends DbVars<any> {
	inbox: Inbox;
	preferences: PreferenceStore;
	moves: NoticeMoves;
	relay: OutboxRelay;
	providers: Providers;
	announcements: Announcements;
	/** How a send of an announcement's fan-out is tried again. */
	announceRetry: RetryPolicy;
	/** Users one page of an announcement's fan-out notifies (at once) before its cursor moves. */
	announcePage: number;
	unreadCounts: UnreadCounts;
	sends: SendBatches;
	/** Where sends written here queue their messages. */
	sendTarget: SendTarget;
	/** The fan-out loop running now, if any; `stopping` ends it after its page. */
	announcing?: Promise<void>;
	stopping: boolean;
	announceTimer?: NodeJS.Timeout;
}

type Methods = MoveParticipantMethods & {
	queue(userId: string, messages: Queued[]): Promise<void>;
	sendAlone(job: BatchedSend): Promise<SendOutcome>;
	pushCommitted(outcomes: SendOutcome[]): void;
	deliver(channel: ExternalChannel, msg: ChannelDelivery<Delivery>): Promise<void>;
	announce(): void;
	fanOut(): Promise<void>;
	notifyPage(a: Announced, users: string[]): Promise<PageOutcome>;
};

const category = { type: "enum", values: [...CATEGORIES] } as const;
const noticeId = { type: "string", max: 36, pattern: /^[0-9a-f-]{36}$/, messages: { stringPattern: "must be a notice id" } } as const;
const idempotencyKey = { type: "string", min: 1, max: 255, pattern: /^[\x21-\x7e]+$/ } as const;
/** A write of the user's notices: its statements commit together (regions/home-router.ts). */
const atomicWrite = { param: "userId", atomic: true } as const;
const switches = { type: "object", strict: true, props: Object.fromEntries(CATEGORIES.map(c => [c, { type: "boolean" }])) } as const;
/** Most notices one page lists. */
const MAX_PAGE = 100;
/** A notice's template data: small, flat values. */
const MAX_DATA_FIELDS = 32;
/**
 * Send batches in progress at once on a node (each on its own connection), most sends in one, and most
 * template data in one (at most 32 fields of 2000 characters a send: a batch of large sends stays far
 * below MariaDB's max_allowed_packet of 16 MiB, though every value goes into several statements).
 */
const SEND_LANES = 1;
const SEND_BATCH = 256;
const SEND_BATCH_DATA_BYTES = 256 * 1024;
/** Runs of a send alone that met a notice numbered or keyed meanwhile. */
const SEND_ATTEMPTS = 5;

/**
 * Notices: one inbox entry per idempotency key in the user's home region, rendered from a
 * template in the user's locale, pushed live to the user's streams in every region as it
 * commits, and queued for e-mail and webhooks (the channels the user did not turn off) in the same
 * transaction, so a crash loses or doubles none of those. Sends are committed in batches
 * (send-batches.ts, sends.ts). Producers send through the
 * durable channel `notice.send`. A move participant.
 */
const svNotice: ServiceSchema<ServiceSettingSchema, Methods, Vars> = {
	name: "sv-notice",
	mixins: [dbMixin(migrations), moveParticipantMixin(), metricsMixin()],

	channels: {
		[SEND_CHANNEL]: {
			maxRetries: 10_000,
			maxBackoffMs: 5000,
			maxInFlight: 32,
			async handler(this: any, msg: ChannelDelivery<Record<string, unknown>>) {
				await msg.ctx.call("sv-notice.send", msg.payload).catch((err: { code?: number; type?: string; message?: string }) => {
					// A producer's mistake (no such template, data missing, no such user) does not heal by waiting.
					if (!healsByWaiting(err)) {
						this.logger.error(`notice refused for good (${err.type}): ${err.message}`);
						return;
					}
					throw err;
				});
			}
		},
		[ANNOUNCE_CHANNEL]: {
			maxRetries: 10_000,
			maxBackoffMs: 5000,
			async handler(this: any, msg: ChannelDelivery<Announced>) {
				await this.announcements.begin(msg.payload, Date.now());
				this.announce();
			}
		},
		"notice.email": {
			maxRetries: 8,
			maxBackoffMs: 60_000,
			handler(this: any, msg: ChannelDelivery<Delivery>) {
				return this.deliver("email", msg);
			}
		},
		"notice.webhook": {
			maxRetries: 8,
			maxBackoffMs: 60_000,
			handler(this: any, msg: ChannelDelivery<Delivery>) {
				return this.deliver("webhook", msg);
			}
		}
	},

	actions: {
		send: {
			restricted: "notice",
			// Committed in set-based batches that hold every user's ownership row (send-batches.ts).
			home: { param: "userId", selfFenced: true },
			params: {
				$$strict: true,
				userId,
				category,
				template: { type: "string", min: 1, max: 64, pattern: /^[a-z0-9-]+$/ },
				data: {
					type: "record",
					key: { type: "string", max: 64 },
					value: { type: "multi", rules: [{ type: "string", max: 2000 }, { type: "number" }, { type: "boolean" }] }
				},
				idempotencyKey,
				channels: { type: "array", items: { type: "enum", values: [...CHANNELS] }, optional: true, unique: true }
			},
			async handler(ctx: Context<SendRequest, { $home?: HomeMeta }>) {
				const p = ctx.params;
				if (Object.keys(p.data).length > MAX_DATA_FIELDS)
					throw new Errors.ValidationError("Parameters validation error!", "VALIDATION_ERROR", [
						{ field: "data", message: `at most ${MAX_DATA_FIELDS} fields` }
					]);
				const job = { req: p, callerEpoch: ctx.meta.$home?.epoch };
				// Inside another write's transaction (which holds SQLite's one connection) a batch could not start: it joins that write.
				const { row, replayed, relayed } = scopeOf(this.db) ? await this.sendAlone(job) : await this.sends.submit(job);
				if (relayed) this.relay.kick();
				return { notice: noticeView(row), replayed };
			}
		},

		announce: {
			restricted: "notice",
			params: {
				$$strict: true,
				title: { type: "string", min: 1, max: MAX_TITLE, trim: true },
				body: { type: "string", min: 1, max: MAX_BODY, trim: true },
				regions: { type: "array", items: regionId, min: 1, unique: true }
			},
			/**
			 * Records the announcement here with its message to each region it goes to, in one transaction; the
			 * outbox relay sends them (where a region is down, the message waits in this region's channel outbox).
			 */
			async handler(ctx: Context<{ title: string; body: string; regions: string[] }>) {
				const runtime = regionRuntimeOf(this.broker);
				const unknown = ctx.params.regions.find(r => !runtime.regions.some(known => known.id === r));
				if (unknown) throw new UnknownRegionError(unknown);
				const a: Announced = { id: randomUUID(), title: ctx.params.title, body: ctx.params.body };
				const now = Date.now();
				await this.announcements.record(a, ctx.params.regions, now, announcementRows(ANNOUNCE_CHANNEL, a, ctx.params.regions, now));
				this.relay.kick();
				return { id: a.id };
			}
		},

		announcementStatus: {
			home: { region: "region" },
			params: { $$strict: true, region: regionId, id: noticeId },
			/** What `region` knows of the announcement: what it is (where it was made) and its run there. */
			handler(ctx: Context<{ region: string; id: string }>) {
				return this.announcements.status(ctx.params.id);
			}
		},

		announcement: {
			params: { $$strict: true, id: noticeId },
			/** Progress in each region it goes to, gathered from every region that answers (one that does not shows nothing yet). */
			async handler(ctx: Context<{ id: string }>) {
				const runtime = regionRuntimeOf(this.broker);
				const answers = await Promise.allSettled(
					runtime.regions.map(r => ctx.call<AnnouncementStatus, unknown>("sv-notice.announcementStatus", { region: r.id, id: ctx.params.id }))
				);
				const heard = new Map<string, AnnouncementStatus>();
				answers.forEach((a, i) => {
					if (a.status === "fulfilled") heard.set(runtime.regions[i]!.id, a.value);
				});
				const made = [...heard.values()].find(s => s.announcement)?.announcement;
				if (!made) throw new AnnouncementNotFoundError(ctx.params.id);
				const none = { targeted: 0, written: 0, pushed: 0, failed: 0, done: false, failures: [] };
				return {
					id: made.id,
					title: made.title,
					regions: Object.fromEntries(made.regions.map(r => [r, heard.get(r)?.run ?? none])),
					createdAt: made.createdAt
				};
			}
		},

		list: {
			home: { param: "userId", readonly: true },
			params: {
				$$strict: true,
				userId,
				unread: { type: "boolean", optional: true, convert: true },
				cursor: { type: "number", integer: true, min: 1, optional: true, convert: true },
				limit: { type: "number", integer: true, min: 1, max: MAX_PAGE, default: 20, convert: true }
			},
			async handler(ctx: Context<{ userId: string; unread?: boolean; cursor?: number; limit: number }>) {
				const { userId: user, unread, cursor, limit } = ctx.params;
				const rows = await this.inbox.list(user, { unread, before: cursor, limit: limit + 1 });
				const page = rows.slice(0, limit);
				return { items: page.map(noticeView), nextCursor: rows.length > limit ? Number(page[page.length - 1]!.seq) : null };
			}
		},

		since: {
			home: { param: "userId", readonly: true },
			params: {
				$$strict: true,
				userId,
				after: { type: "number", integer: true, min: 0, convert: true },
				limit: { type: "number", integer: true, min: 1, max: 500, default: 100 }
			},
			async handler(ctx: Context<{ userId: string; after: number; limit: number }>) {
				return (await this.inbox.since(ctx.params.userId, ctx.params.after, ctx.params.limit)).map(noticeView);
			}
		},

		unreadCount: {
			home: { param: "userId", readonly: true },
			params: { $$strict: true, userId },
			async handler(ctx: Context<{ userId: string }>) {
				return { unread: await this.inbox.unreadCount(ctx.params.userId) };
			}
		},

		markRead: {
			restricted: "notice",
			home: atomicWrite,
			params: { $$strict: true, userId, id: noticeId },
			async handler(ctx: Context<{ userId: string; id: string }>) {
				await this.inbox.markRead(ctx.params.userId, ctx.params.id);
				await this.queue(ctx.params.userId, [pushOf(ctx.params.userId)]);
				this.relay.kick();
				return { unread: await this.inbox.unreadCount(ctx.params.userId) };
			}
		},

		readAll: {
			restricted: "notice",
			home: atomicWrite,
			params: { $$strict: true, userId },
			async handler(ctx: Context<{ userId: string }>) {
				const marked = await this.inbox.readAll(ctx.params.userId);
				if (marked) {
					await this.queue(ctx.params.userId, [pushOf(ctx.params.userId)]);
					this.relay.kick();
				}
				return { marked, unread: 0 };
			}
		},

		remove: {
			restricted: "notice",
			home: atomicWrite,
			params: { $$strict: true, userId, id: noticeId },
			async handler(ctx: Context<{ userId: string; id: string }>) {
				await this.inbox.remove(ctx.params.userId, ctx.params.id);
				await this.queue(ctx.params.userId, [pushOf(ctx.params.userId)]);
				this.relay.kick();
				return { unread: await this.inbox.unreadCount(ctx.params.userId) };
			}
		},

		getPreferences: {
			home: { param: "userId", readonly: true },
			params: { $$strict: true, userId },
			handler(ctx: Context<{ userId: string }>) {
				return this.preferences.get(ctx.params.userId);
			}
		},

		setPreferences: {
			restricted: "notice",
			home: atomicWrite,
			params: {
				$$strict: true,
				userId,
				locale: { type: "enum", values: [...LOCALES] },
				channels: { type: "object", strict: true, props: Object.fromEntries(CHANNELS.map(c => [c, switches])) }
			},
			handler(ctx: Context<{ userId: string; locale: Locale; channels: Preferences["channels"] }>) {
				return this.preferences.set(ctx.params.userId, { locale: ctx.params.locale, channels: ctx.params.channels });
			}
		}
	},

	methods: {
		/** Messages sent once this write commits, in one statement. */
		async queue(user: string, messages: Queued[]) {
			if (!messages.length) return;
			await this.db
				.insertInto("notice_outbox")
				.values(outboxRows(regionRuntimeOf(this.broker).region.id, Date.now(), [{ userId: user, messages }]))
				.execute();
		},
		/** One send through the fence: for a user whose ownership row a batch could not decide on (absent, moving), or inside another write. */
		async sendAlone(job: BatchedSend) {
			const fence = regionRuntimeOf(this.broker).fence;
			// Inside another write, whose commit comes after this returns, the relay sends the push.
			const pushNow = !scopeOf(this.db);
			for (let attempt = 1; ; attempt++) {
				try {
					const outcome = await fence.run(
						job.req.userId,
						job.callerEpoch,
						async () => {
							const groups = sequentialGroups(this.db);
							const users = [job.req.userId];
							const facts = sendFactsOf(users, (await groups.run([sendFactsQuery(this.db, users)]))[0]!.rows);
							const [written] = await writeSends(this.db, groups, [job.req], facts, this.sendTarget, pushNow);
							if (written!.kind === "failed") throw written!.error;
							return written!.outcome;
						},
						true
					);
					this.pushCommitted([outcome]);
					return outcome;
				} catch (err) {
					// Another transaction numbered or keyed a notice of the user since this one's snapshot: a new one sees it.
					if (!isDuplicateKey(err) || attempt >= SEND_ATTEMPTS) throw err;
				}
			}
		},
		async deliver(channel: ExternalChannel, msg: ChannelDelivery<Delivery>) {
			const provider = this.providers[channel];
			// Queued while the channel was configured, which it no longer is: nothing to deliver to.
			if (!provider) return void this.logger.warn(`notice ${msg.payload.noticeId}: ${channel} is not configured here; dropped`);
			await provider.deliver(msg.payload, async user => {
				const profile = await msg.ctx.call<{ email: string | null }, unknown>("sv-user.get", { userId: user });
				return { email: profile.email };
			});
		},
		/** Sends the live pushes of committed sends. */
		pushCommitted(outcomes: SendOutcome[]) {
			const pushes = outcomes.flatMap(o => (o.push ? [o.push] : []));
			if (pushes.length) void this.broker.broadcast(PUSH_EVENT, { pushes } satisfies Pushes);
		},
		/** Starts the fan-out loop unless it runs already. */
		announce() {
			if (this.announcing || this.stopping) return;
			this.announcing = this.fanOut()
				.catch(err => this.logger.error(`announcement fan-out stopped: ${(err as Error).message}`))
				.finally(() => {
					this.announcing = undefined;
				});
		},
		/** Runs each unfinished announcement this node can claim, page by page, until none is left or the node stops. */
		async fanOut() {
			for (let run = await this.announcements.claim(Date.now()); run; run = await this.announcements.claim(Date.now())) {
				let cursor = run.cursor;
				for (;;) {
					if (this.stopping) return void (await this.announcements.release(run.id));
					const users = await this.announcements.usersAfter(cursor, this.announcePage);
					if (users.length === 0) break;
					const page = await this.notifyPage(run, users);
					await this.announcements.advance(run.id, page, Date.now());
					cursor = page.lastUserId;
				}
				await this.announcements.finish(run.id);
			}
		},
		/** Sends the announcement to a page of users at once, each send retried on its own (announcements.ts). */
		async notifyPage(a: Announced, users: string[]) {
			const page: PageOutcome = { lastUserId: users[users.length - 1]!, written: 0, pushed: 0, failed: [] };
			const sent = await Promise.all(
				users.map(user =>
					retried(
						() =>
							this.broker.call<{ notice: { read: boolean } }, unknown>("sv-notice.send", {
								userId: user,
								category: "announcement",
								template: "message",
								data: { title: a.title, body: a.body },
								idempotencyKey: `announcement:${a.id}`
							}),
						this.announceRetry,
						ms => new Promise(resolve => setTimeout(resolve, ms))
					)
				)
			);
			sent.forEach((s, i) => {
				if ("error" in s) {
					page.failed.push({ userId: users[i]!, ...s.error, attempts: s.attempts });
					this.logger.warn(`announcement ${a.id}: user ${users[i]} failed after ${s.attempts} attempt(s): ${s.error.type}: ${s.error.message}`);
					return;
				}
				page.written++;
				// A muted category is written read and not pushed.
				if (!s.value.notice.read) page.pushed++;
			});
			return page;
		},
		...movesThrough(service => service.moves)
	},

	created() {
		this.providers = providersFromEnv(process.env, this.broker, this.logger);
	},

	async started() {
		const runtime = regionRuntimeOf(this.broker);
		this.sendTarget = { region: runtime.region.id, dialect: this.dialect, configured: channel => Boolean(this.providers[channel]) };
		this.sends = new SendBatches({
			region: runtime.region.id,
			db: unscoped(this.db),
			records: runtime.ownership,
			write: (trx, groups, reqs, facts) => writeSends(trx, groups, reqs, facts, this.sendTarget, true),
			committed: outcomes => this.pushCommitted(outcomes),
			alone: job => this.sendAlone(job),
			lanes: this.dialect === "sqlite" ? 1 : envInt(process.env, "EDGEHOME_NOTICE_SEND_LANES", SEND_LANES, 1, 16),
			maxSize: SEND_BATCH,
			maxDataBytes: SEND_BATCH_DATA_BYTES
		});
		this.inbox = new Inbox(this.db);
		this.unreadCounts = new UnreadCounts(users => this.inbox.unreadCounts(users));
		this.preferences = new PreferenceStore(this.db);
		this.moves = new NoticeMoves(this.db);
		const here = regionRuntimeOf(this.broker).region.id;
		this.relay = new OutboxRelay({
			db: unscoped(this.db),
			table: "notice_outbox",
			dialect: this.dialect,
			logger: this.logger,
			broker: this.broker,
			pollMs: envInt(process.env, "EDGEHOME_NOTICE_RELAY_MS", 500, 10, 60_000),
			send: async m => {
				if (m.channel === PUSH) {
					const push = m.payload as QueuedPush;
					this.broker.broadcast(PUSH_EVENT, { pushes: [{ ...push, unreadCount: await this.unreadCounts.of(push.userId) }] } satisfies Pushes);
				} else await this.broker.sendToChannel(m.channel, m.payload, { key: m.key, ...(m.region === here ? {} : { region: m.region }) });
			}
		});
		this.relay.start();
		this.announcements = new Announcements(this.db, envInt(process.env, "EDGEHOME_NOTICE_ANNOUNCE_LEASE_MS", 30_000, 100, 600_000));
		this.announceRetry = retryPolicyFromEnv(process.env, this.announcements.leaseMs);
		this.announcePage = envInt(process.env, "EDGEHOME_NOTICE_ANNOUNCE_PAGE", 100, 1, 1000);
		this.stopping = false;
		// Picks up what a stopped node left, once its hold has lapsed.
		this.announceTimer = setInterval(() => this.announce(), envInt(process.env, "EDGEHOME_NOTICE_ANNOUNCE_POLL_MS", 5000, 50, 300_000));
		this.announceTimer.unref();
		this.announce();
	},

	async stopped() {
		this.stopping = true;
		clearInterval(this.announceTimer);
		await this.announcing;
		await this.relay?.stop();
		for (const provider of Object.values(this.providers)) await provider?.close?.();
	}
};

export default svNotice;
