import type { EventStream } from "../mixins/gateway/live-streams.ts";
import type { NoticeView } from "./sv-notice/inbox.ts";
import type { PushedNotice } from "./sv-notice/sv-notice.service.ts";

/**
 * One user's live notice stream: `notice` events (id: the notice's `seq`) and `unread-count`
 * events. The user's notices are numbered one by one, so the stream knows the last one it sent
 * and never sends one again; a number skipped (a push this stream missed, a muted notice) is
 * read from the inbox before going on, so nothing is left out either. Steps run one after the
 * other: events leave in order.
 */

/** The topic of the notice streams among a gateway's live streams. */
export const NOTICE_TOPIC = "notices";
/** Notices read from the inbox per call when catching up. */
const PAGE = 100;

/** How a stream reads the user's inbox in the user's home region. */
export interface NoticeSource {
	/** The notices after `seq`, oldest first, at most `limit`. */
	since(seq: number, limit: number): Promise<NoticeView[]>;
	/** The number of the user's latest notice (0: none). */
	latestSeq(): Promise<number>;
	unreadCount(): Promise<number>;
}

export class NoticeFeed {
	private readonly stream: Pick<EventStream, "send" | "close" | "closed">;
	private readonly source: NoticeSource;
	private readonly onError: (err: unknown) => void;
	/** The number of the last notice the client has. */
	private last = 0;
	private unread: number | undefined;
	private steps: Promise<void> = Promise.resolve();

	constructor(stream: Pick<EventStream, "send" | "close" | "closed">, source: NoticeSource, onError: (err: unknown) => void) {
		this.stream = stream;
		this.source = source;
		this.onError = onError;
	}

	/**
	 * A new client starts at the latest notice; one that resumes after `lastEventId` gets what it
	 * missed first (an id past the latest notice, which no stream sent, counts as the latest).
	 */
	start(lastEventId: number | undefined): void {
		this.step(async () => {
			const latest = await this.source.latestSeq();
			this.last = Math.min(lastEventId ?? latest, latest);
			if (lastEventId !== undefined) await this.catchUp();
			this.sendUnread(await this.source.unreadCount());
		});
	}

	/** A push for this user (heard in any region). */
	push(pushed: PushedNotice): void {
		this.step(async () => {
			const notice = pushed.notice;
			if (notice && notice.seq === this.last + 1) this.sendNotice(notice);
			else if (notice && notice.seq > this.last) {
				await this.catchUp();
				// Not in the inbox any more (deleted since): nothing to send, but nothing missing below it either.
				this.last = Math.max(this.last, notice.seq);
			}
			this.sendUnread(pushed.unreadCount);
		});
	}

	/** A failed read ends the stream: the client comes back with its last event id, and nothing is skipped. */
	private step(run: () => Promise<void>): void {
		this.steps = this.steps
			.then(() => (this.stream.closed ? undefined : run()))
			.catch(err => {
				this.onError(err);
				this.stream.close();
			});
	}

	/** Every notice after the last one sent, from the inbox. */
	private async catchUp(): Promise<void> {
		for (;;) {
			const page = await this.source.since(this.last, PAGE);
			for (const notice of page) if (notice.seq > this.last) this.sendNotice(notice);
			if (page.length < PAGE || this.stream.closed) return;
		}
	}

	private sendNotice(notice: NoticeView): void {
		this.stream.send("notice", notice, notice.seq);
		this.last = notice.seq;
	}

	private sendUnread(unread: number): void {
		if (unread === this.unread) return;
		this.unread = unread;
		this.stream.send("unread-count", { unread });
	}
}
