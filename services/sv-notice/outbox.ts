import type { OutboxRow } from "../../mixins/channels/sql-outbox-relay.ts";
import type { Announced } from "./announcements.ts";
import type { NoticeView } from "./inbox.ts";

/** The outbox row that becomes the live push (sv-notice.service.ts's PUSH_EVENT) rather than a channel message. */
export const PUSH = "push";

/** What a user's live streams get: a notice, or a new unread count. */
export interface PushedNotice {
	userId: string;
	unreadCount: number;
	notice?: NoticeView;
}

/** A push as a write the relay sends queues it: the unread count is added as it leaves the outbox (unread-counts.ts). */
export type QueuedPush = Omit<PushedNotice, "unreadCount">;

/** One outbox row: a message for a channel, or the live push. */
export interface Queued {
	channel: string;
	payload: unknown;
}

/** A live-stream update for the user's clients. */
export const pushOf = (userId: string, notice?: NoticeView): Queued => ({
	channel: PUSH,
	payload: { userId, ...(notice ? { notice } : {}) } satisfies QueuedPush
});

/** The owner of the rows no user's move takes along (an announcement's): no user id is this short. */
export const REGION_OWNED = "-";

/** The rows of `notice_outbox` that send each user's messages once the write commits, keyed by the user. */
export function outboxRows(region: string, now: number, queued: { userId: string; messages: Queued[] }[]): OutboxRow[] {
	return queued.flatMap(({ userId, messages }) =>
		messages.map(m => ({ owner_id: userId, channel: m.channel, msg_key: userId, region, payload: JSON.stringify(m.payload), created_at: now }))
	);
}

/** The rows that send an announcement on `channel` to each region it goes to, keyed by the announcement. */
export function announcementRows(channel: string, a: Announced, regions: readonly string[], now: number): OutboxRow[] {
	return regions.map(region => ({ owner_id: REGION_OWNED, channel, msg_key: a.id, region, payload: JSON.stringify(a), created_at: now }));
}
