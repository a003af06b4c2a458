import type { ServerResponse } from "node:http";
import type { Context, ServiceSchema } from "moleculer";
import { Errors } from "moleculer";
import { declared } from "../mixins/gateway/declared-errors.ts";
import { StreamsUnavailableError, TooManyStreamsError } from "../mixins/gateway/live-streams.ts";
import type { GatewayContext, GatewayRoute, GatewayService } from "../mixins/gateway/routes.ts";
import { NOTICE_ERRORS as refused, SERVICE_CALL_FAILURES } from "./gateway-errors.ts";
import * as answer from "./notice-answers.ts";
import { NOTICE_TOPIC, NoticeFeed } from "./notice-stream.ts";
import { CATEGORIES, CHANNELS, LOCALES } from "./sv-notice/categories.ts";
import type { NoticeView } from "./sv-notice/inbox.ts";
import type { PushedNotice, Pushes } from "./sv-notice/sv-notice.service.ts";
import { PUSH_EVENT } from "./sv-notice/sv-notice.service.ts";

/**
 * The caller's own notices over REST, on every gateway (as the wallet is): the inbox a page at a
 * time, the unread count, marking read, deleting, the preferences, each served by sv-notice in the
 * caller's home region for the user the token names (another user's notice is not found); and the
 * live stream of them (Server-Sent Events), fed by the pushes every region's gateways hear.
 */

const read = { resource: "own-notices", action: "read" };
const write = { resource: "own-notices", action: "write" };

const noticeId = { type: "string", length: 36, pattern: /^[0-9a-f-]{36}$/, messages: { stringPattern: "must be a notice id" } };
const switches = { type: "object", strict: true, props: Object.fromEntries(CATEGORIES.map(c => [c, { type: "boolean" }])) };

/** The most notices one page lists (sv-notice's own limit). */
const MAX_PAGE = 100;

/** A resumed stream's last event id: a notice's number. */
const LAST_EVENT_ID = /^[0-9]{1,15}$/;

const notices = (r: Omit<GatewayRoute, "tag" | "auth">): GatewayRoute => ({ ...r, tag: "notices", auth: true });

/** The `Last-Event-ID` a reconnecting client sends; none (or empty): a new stream. */
function lastEventIdOf(header: string | string[] | undefined): number | undefined {
	if (header === undefined || header === "") return undefined;
	if (typeof header !== "string" || !LAST_EVENT_ID.test(header))
		throw new Errors.ValidationError("Parameters validation error!", "VALIDATION_ERROR", [
			{ field: "Last-Event-ID", message: "must be the id of an event of this stream" }
		]);
	return Number(header);
}

/** The caller's stream: registered before the inbox is read, so no push falls between the two. */
function openNoticeStream(service: GatewayService, ctx: GatewayContext, res: ServerResponse): void {
	const after = lastEventIdOf(res.req.headers["last-event-id"]);
	const userId = ctx.locals.user.id;
	// Its session ended or its token expired, the stream ends: the client comes back with a new token.
	const stream = service.liveStreams.open(res, userId, NOTICE_TOPIC, () => service.stillAuthenticated(ctx, res.req));
	const broker = service.broker;
	const feed = new NoticeFeed(
		stream,
		{
			since: (seq, limit) => broker.call<NoticeView[], unknown>("sv-notice.since", { userId, after: seq, limit }),
			latestSeq: async () => (await broker.call<{ items: NoticeView[] }, unknown>("sv-notice.list", { userId, limit: 1 })).items[0]?.seq ?? 0,
			unreadCount: async () => (await broker.call<{ unread: number }, unknown>("sv-notice.unreadCount", { userId })).unread
		},
		err => service.logger.warn(`notice stream of ${userId} ended: ${(err as Error).message}`)
	);
	stream.receiveWith(pushed => feed.push(pushed as PushedNotice));
	feed.start(after);
}

export const NOTICE_ROUTES: readonly GatewayRoute[] = [
	notices({
		method: "GET",
		path: "/api/v1/me/notices",
		name: "myNotices",
		summary: "The caller's notices, newest first, a page at a time",
		permission: read,
		status: 200,
		response: answer.noticePage,
		errors: SERVICE_CALL_FAILURES,
		params: {
			$$strict: true,
			unread: { type: "boolean", optional: true, convert: true },
			cursor: { type: "number", integer: true, min: 1, optional: true, convert: true },
			limit: { type: "number", integer: true, min: 1, max: MAX_PAGE, default: 20, convert: true }
		},
		handler(ctx, params: { unread?: boolean; cursor?: number; limit: number }) {
			return ctx.call("sv-notice.list", { ...params, userId: ctx.locals.user.id });
		}
	}),
	notices({
		method: "GET",
		path: "/api/v1/me/notices/unread-count",
		name: "myUnreadNotices",
		summary: "How many of the caller's notices are unread",
		permission: read,
		status: 200,
		response: answer.unreadCount,
		errors: SERVICE_CALL_FAILURES,
		params: { $$strict: true },
		handler(ctx) {
			const userId = ctx.locals.user.id;
			return this.cachedCall(ctx, "sv-notice.unreadCount", { userId }, userId);
		}
	}),
	notices({
		method: "GET",
		path: "/api/v1/me/notices/stream",
		name: "myNoticeStream",
		summary: "The caller's notices as they arrive, as Server-Sent Events",
		description:
			"Events: `notice` (data: the notice, id: its `seq`) and `unread-count` (data: `{unread}`, first sent on connecting); a comment line as a heartbeat. " +
			"A client that reconnects with `Last-Event-ID` gets the notices it missed, in order, then the live ones: none twice, none left out. " +
			"429 `TOO_MANY_STREAMS` past the streams one user may hold open on a gateway.",
		permission: read,
		status: 200,
		stream: true,
		mediaTypes: ["text/event-stream"],
		response: answer.eventStream,
		errors: [...SERVICE_CALL_FAILURES, declared(new TooManyStreamsError(0), { asRaised: true }), declared(new StreamsUnavailableError("-"))],
		params: { $$strict: true },
		handler(ctx, _params, res) {
			openNoticeStream(this, ctx, res);
		}
	}),
	notices({
		method: "POST",
		path: "/api/v1/me/notices/read-all",
		name: "readAllMyNotices",
		summary: "Mark every one of the caller's notices read",
		permission: write,
		status: 200,
		response: answer.readAll,
		errors: SERVICE_CALL_FAILURES,
		params: { $$strict: true },
		handler(ctx) {
			return ctx.call("sv-notice.readAll", { userId: ctx.locals.user.id });
		}
	}),
	notices({
		method: "POST",
		path: "/api/v1/me/notices/:id/read",
		name: "readMyNotice",
		summary: "Mark one of the caller's notices read",
		permission: write,
		status: 200,
		response: answer.unreadCount,
		errors: [...SERVICE_CALL_FAILURES, refused.noticeNotFound],
		params: { $$strict: true, id: noticeId },
		handler(ctx, params: { id: string }) {
			return ctx.call("sv-notice.markRead", { userId: ctx.locals.user.id, id: params.id });
		}
	}),
	notices({
		method: "DELETE",
		path: "/api/v1/me/notices/:id",
		name: "deleteMyNotice",
		summary: "Delete one of the caller's notices",
		permission: write,
		status: 204,
		errors: [...SERVICE_CALL_FAILURES, refused.noticeNotFound],
		params: { $$strict: true, id: noticeId },
		async handler(ctx, params: { id: string }) {
			await ctx.call("sv-notice.remove", { userId: ctx.locals.user.id, id: params.id });
			return null;
		}
	}),
	notices({
		method: "GET",
		path: "/api/v1/me/notice-preferences",
		name: "myNoticePreferences",
		summary: "The caller's notice locale and, per channel and category, whether notices go there",
		permission: read,
		status: 200,
		response: answer.preferences,
		errors: SERVICE_CALL_FAILURES,
		params: { $$strict: true },
		handler(ctx) {
			return ctx.call("sv-notice.getPreferences", { userId: ctx.locals.user.id });
		}
	}),
	notices({
		method: "PUT",
		path: "/api/v1/me/notice-preferences",
		name: "setMyNoticePreferences",
		summary: "Replace the caller's notice preferences (security notices stay on in the inbox)",
		permission: write,
		status: 200,
		response: answer.preferences,
		errors: [...SERVICE_CALL_FAILURES, refused.securityNoticesRequired],
		params: {
			$$strict: true,
			locale: { type: "enum", values: [...LOCALES] },
			channels: { type: "object", strict: true, props: Object.fromEntries(CHANNELS.map(c => [c, switches])) }
		},
		handler(ctx, params: { locale: string; channels: Record<string, Record<string, boolean>> }) {
			return ctx.call("sv-notice.setPreferences", { ...params, userId: ctx.locals.user.id });
		}
	})
];

/**
 * The pushes sv-notice sends every region (a global event, signed with the `notice` capability, a
 * batch's pushes in one), each handed to the streams the gateway holds open for its user: a mixin of
 * every gateway service.
 */
export const NOTICE_PUSHES: Partial<ServiceSchema> = {
	events: {
		[PUSH_EVENT]: {
			global: true,
			restricted: "notice",
			handler(this: GatewayService, ctx: Context<Pushes>) {
				for (const push of ctx.params.pushes) this.liveStreams.publish(NOTICE_TOPIC, push.userId, push);
			}
		}
	}
};
