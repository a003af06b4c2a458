import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { Errors } from "moleculer";
import { userId } from "../../kernel/fields.ts";
import type { ChannelDelivery } from "../../mixins/channels/declaration.ts";
import { OutboxRelay } from "../../mixins/channels/sql-outbox-relay.ts";
import type { DbVars } from "../../mixins/db.mixin.ts";
import { dbMixin } from "../../mixins/db.mixin.ts";
import type { MoveParticipantMethods } from "../../mixins/move-participant.mixin.ts";
import { moveParticipantMixin } from "../../mixins/move-participant.mixin.ts";
import { envInt } from "../../regions/runtime/env.ts";
import { regionRuntimeOf } from "../../regions/runtime/region-runtime.ts";
import { unscoped } from "../../regions/stores/scoped-db.ts";
import type { Category, DeliveryChannel, ExternalChannel, Locale } from "./categories.ts";
import { CATEGORIES, CHANNELS, EXTERNAL_CHANNELS, LOCALES } from "./categories.ts";
import type { NoticeRow } from "./inbox.ts";
import { Inbox, noticeView } from "./inbox.ts";
import { migrations } from "./migrations.ts";
import { NoticeMoves } from "./moves.ts";
import type { Preferences } from "./preferences.ts";
import { PreferenceStore } from "./preferences.ts";
import type { Delivery, Providers } from "./providers.ts";
import { providersFromEnv } from "./providers.ts";
import { render } from "./templates.ts";

/** The channel producers send notices through: `{ userId, category, template, data, idempotencyKey, channels? }`. */
export const SEND_CHANNEL = "notice.send";
/** The global event every region's gateways hear: a notice, or a new unread count, for a user's live streams. */
export const PUSH_EVENT = "notice.pushed";
/** The outbox row that becomes PUSH_EVENT rather than a channel message. */
const PUSH = "push";

export interface PushedNotice {
	userId: string;
	unreadCount: number;
	notice?: ReturnType<typeof noticeView>;
}

interface Vars extends DbVars<any> {
	inbox: Inbox;
	preferences: PreferenceStore;
	moves: NoticeMoves;
	relay: OutboxRelay;
	providers: Providers;
}

type Methods = MoveParticipantMethods & {
	queuePush(userId: string, notice?: NoticeRow): Promise<void>;
	queue(userId: string, channel: string, payload: unknown): Promise<void>;
	deliver(channel: ExternalChannel, msg: ChannelDelivery<Delivery>): Promise<void>;
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
 * Notices: one inbox entry per idempotency key in the user's home region, rendered from a
 * template in the user's locale, pushed live to the user's streams in every region, and queued
 * for e-mail and webhooks (the channels the user did not turn off) in the same transaction, so a
 * crash loses or doubles nothing. Producers send through the durable channel `notice.send`. A
 * move participant.
 */
const svNotice: ServiceSchema<ServiceSettingSchema, Methods, Vars> = {
	name: "sv-notice",
	mixins: [dbMixin(migrations), moveParticipantMixin()],

	channels: {
		[SEND_CHANNEL]: {
			maxRetries: 10_000,
			maxBackoffMs: 5000,
			maxInFlight: 32,
			async handler(this: any, msg: ChannelDelivery<Record<string, unknown>>) {
				await msg.ctx.call("sv-notice.send", msg.payload).catch((err: { code?: number; type?: string; message?: string }) => {
					// A producer's mistake (no such template, data missing, no such user) does not heal by waiting.
					if (err.code && err.code >= 400 && err.code < 500 && err.type !== "USER_MOVING") {
						this.logger.error(`notice refused for good (${err.type}): ${err.message}`);
						return;
					}
					throw err;
				});
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
			home: atomicWrite,
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
			async handler(
				ctx: Context<{
					userId: string;
					category: Category;
					template: string;
					data: Record<string, unknown>;
					idempotencyKey: string;
					channels?: DeliveryChannel[];
				}>
			) {
				const p = ctx.params;
				if (Object.keys(p.data).length > MAX_DATA_FIELDS)
					throw new Errors.ValidationError("Parameters validation error!", "VALIDATION_ERROR", [
						{ field: "data", message: `at most ${MAX_DATA_FIELDS} fields` }
					]);
				const earlier = await this.inbox.byKey(p.userId, p.idempotencyKey);
				if (earlier) return { notice: noticeView(earlier), replayed: true };
				const prefs = await this.preferences.get(p.userId);
				// Rendered before anything is written: missing data refuses the send, not the message.
				const rendered = render(p.category, p.template, p.data, prefs.locale);
				const wanted = (channel: DeliveryChannel) => (p.channels ? p.channels.includes(channel) : true) && prefs.channels[channel][p.category];
				const muted = p.category !== "security" && !wanted("inbox");
				const { row, added } = await this.inbox.add({
					userId: p.userId,
					category: p.category,
					template: p.template,
					rendered,
					idempotencyKey: p.idempotencyKey,
					muted
				});
				if (!added) return { notice: noticeView(row), replayed: true };
				if (!muted) await this.queuePush(p.userId, row);
				const delivery: Delivery = {
					noticeId: row.id,
					userId: p.userId,
					category: p.category,
					title: rendered.title,
					text: rendered.text,
					html: rendered.html,
					createdAt: noticeView(row).createdAt
				};
				for (const channel of EXTERNAL_CHANNELS) if (this.providers[channel] && wanted(channel)) await this.queue(p.userId, `notice.${channel}`, delivery);
				this.relay.kick();
				return { notice: noticeView(row), replayed: false };
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
				await this.queuePush(ctx.params.userId);
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
					await this.queuePush(ctx.params.userId);
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
				await this.queuePush(ctx.params.userId);
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
		/** A live-stream update for the user's clients, sent once this write commits. */
		async queuePush(user: string, notice?: NoticeRow) {
			const pushed: PushedNotice = { userId: user, unreadCount: await this.inbox.unreadCount(user), ...(notice ? { notice: noticeView(notice) } : {}) };
			await this.queue(user, PUSH, pushed);
		},
		async queue(user: string, channel: string, payload: unknown) {
			await this.db
				.insertInto("notice_outbox")
				.values({
					owner_id: user,
					channel,
					msg_key: user,
					region: regionRuntimeOf(this.broker).region.id,
					payload: JSON.stringify(payload),
					created_at: Date.now()
				})
				.execute();
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
		moveExport(user: string) {
			return this.moves.export(user);
		},
		moveImport(user: string, rows: unknown[]) {
			return this.moves.import(user, rows);
		},
		moveCount(user: string) {
			return this.moves.count(user);
		},
		moveDelete(user: string) {
			return this.moves.remove(user);
		}
	},

	created() {
		this.providers = providersFromEnv(process.env, this.broker, this.logger);
	},

	async started() {
		this.inbox = new Inbox(this.db);
		this.preferences = new PreferenceStore(this.db);
		this.moves = new NoticeMoves(this.db);
		const here = regionRuntimeOf(this.broker).region.id;
		this.relay = new OutboxRelay({
			db: unscoped(this.db),
			table: "notice_outbox",
			dialect: this.dialect,
			logger: this.logger,
			pollMs: envInt(process.env, "EDGEHOME_NOTICE_RELAY_MS", 500, 10, 60_000),
			send: async m => {
				if (m.channel === PUSH) this.broker.broadcast(PUSH_EVENT, m.payload);
				else await this.broker.sendToChannel(m.channel, m.payload, { key: m.key, ...(m.region === here ? {} : { region: m.region }) });
			}
		});
		this.relay.start();
	},

	async stopped() {
		await this.relay?.stop();
		for (const provider of Object.values(this.providers)) await provider?.close?.();
	}
};

export default svNotice;
