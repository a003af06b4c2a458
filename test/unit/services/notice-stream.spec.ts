import { describe, expect, it } from "vitest";
import type { NoticeSource } from "../../../services/notice-stream.ts";
import { NoticeFeed } from "../../../services/notice-stream.ts";
import type { NoticeView } from "../../../services/sv-notice/inbox.ts";

/** NoticeFeed against a scripted inbox: what a stream sends, for every order pushes and reads may come in. */

const view = (seq: number): NoticeView => ({
	id: `00000000-0000-0000-0000-${String(seq).padStart(12, "0")}`,
	seq,
	category: "wallet",
	title: `notice ${seq}`,
	text: "",
	html: "",
	read: false,
	createdAt: new Date(0).toISOString()
});

/** An inbox holding `seqs` (the others deleted), with reads that wait until released when `held`. */
class Inbox implements NoticeSource {
	seqs: number[];
	unread = 0;
	calls: string[] = [];
	private gate: Promise<void> = Promise.resolve();
	private release: () => void = () => undefined;
	failing = false;

	constructor(seqs: number[]) {
		this.seqs = seqs;
	}

	hold(): void {
		this.gate = new Promise(resolve => (this.release = resolve));
	}

	open(): void {
		this.release();
	}

	async since(seq: number, limit: number): Promise<NoticeView[]> {
		this.calls.push(`since ${seq}`);
		await this.gate;
		if (this.failing) throw new Error("region unavailable");
		return this.seqs
			.filter(s => s > seq)
			.slice(0, limit)
			.map(view);
	}

	async latestSeq(): Promise<number> {
		this.calls.push("latest");
		await this.gate;
		return Math.max(0, ...this.seqs);
	}

	async unreadCount(): Promise<number> {
		await this.gate;
		return this.unread;
	}
}

class Stream {
	sent: { event: string; data: unknown; id?: number }[] = [];
	closed = false;
	send(event: string, data: unknown, id?: number): void {
		if (!this.closed) this.sent.push({ event, data, id });
	}
	close(): void {
		this.closed = true;
	}
	get notices(): number[] {
		return this.sent.filter(e => e.event === "notice").map(e => e.id!);
	}
	get counts(): unknown[] {
		return this.sent.filter(e => e.event === "unread-count").map(e => e.data);
	}
}

const settle = () => new Promise(resolve => setTimeout(resolve, 5));

function feed(inbox: Inbox) {
	const stream = new Stream();
	const errors: unknown[] = [];
	return { stream, errors, feed: new NoticeFeed(stream, inbox, err => errors.push(err)) };
}

describe("NoticeFeed", () => {
	it("starts a new client at the latest notice with the unread count, and sends each next notice once", async () => {
		const inbox = new Inbox([1, 2, 3]);
		inbox.unread = 2;
		const { stream, feed: f } = feed(inbox);
		f.start(undefined);
		await settle();
		expect(stream.sent).toEqual([{ event: "unread-count", data: { unread: 2 }, id: undefined }]);
		inbox.seqs.push(4);
		f.push({ userId: "u", unreadCount: 3, notice: view(4) });
		f.push({ userId: "u", unreadCount: 3, notice: view(4) });
		f.push({ userId: "u", unreadCount: 3, notice: view(3) });
		await settle();
		expect(stream.notices).toEqual([4]);
		expect(stream.counts).toEqual([{ unread: 2 }, { unread: 3 }]);
		expect(inbox.calls).toEqual(["latest"]);
	});

	it("resumes after the client's last event id with what it missed, oldest first, a page at a time", async () => {
		const inbox = new Inbox(Array.from({ length: 250 }, (_, i) => i + 1));
		const { stream, feed: f } = feed(inbox);
		f.start(20);
		await settle();
		expect(stream.notices).toEqual(Array.from({ length: 230 }, (_, i) => i + 21));
		expect(inbox.calls).toEqual(["latest", "since 20", "since 120", "since 220"]);
	});

	it("takes an id past the latest notice (no stream sent it) as the latest, so the next notices are not held back", async () => {
		const inbox = new Inbox([1, 2, 3]);
		const { stream, feed: f } = feed(inbox);
		f.start(999);
		await settle();
		inbox.seqs.push(4);
		f.push({ userId: "u", unreadCount: 1, notice: view(4) });
		await settle();
		expect(stream.notices).toEqual([4]);
	});

	it("sends nothing twice when pushes arrive while it is still catching up", async () => {
		const inbox = new Inbox([1, 2, 3, 4, 5]);
		inbox.hold();
		const { stream, feed: f } = feed(inbox);
		f.start(2);
		// Pushed while the inbox was being read: 4 and 5 are in what it returns as well.
		f.push({ userId: "u", unreadCount: 4, notice: view(4) });
		f.push({ userId: "u", unreadCount: 5, notice: view(5) });
		inbox.seqs.push(6);
		f.push({ userId: "u", unreadCount: 6, notice: view(6) });
		inbox.open();
		await settle();
		expect(stream.notices).toEqual([3, 4, 5, 6]);
	});

	it("reads a skipped number from the inbox before the live notice, and passes over a deleted one", async () => {
		const inbox = new Inbox([1, 2, 3, 5, 6]);
		const { stream, feed: f } = feed(inbox);
		f.start(undefined);
		await settle();
		inbox.seqs.push(7);
		f.push({ userId: "u", unreadCount: 1, notice: view(7) });
		await settle();
		expect(stream.notices).toEqual([7]);

		// 8 deleted, 9 never pushed here (muted, or a push this node missed): 9 comes from the inbox, before 10.
		inbox.seqs.push(9, 10);
		f.push({ userId: "u", unreadCount: 2, notice: view(10) });
		await settle();
		expect(stream.notices).toEqual([7, 9, 10]);
		expect(inbox.calls).toEqual(["latest", "since 7"]);

		// A pushed notice deleted before the gap below it was filled: not sent, and nothing below it is missing.
		f.push({ userId: "u", unreadCount: 2, notice: view(12) });
		await settle();
		expect(stream.notices).toEqual([7, 9, 10]);
		inbox.seqs.push(13);
		f.push({ userId: "u", unreadCount: 3, notice: view(13) });
		await settle();
		expect(stream.notices).toEqual([7, 9, 10, 13]);
		expect(inbox.calls).toEqual(["latest", "since 7", "since 10"]);
	});

	it("sends a changed unread count only", async () => {
		const inbox = new Inbox([]);
		const { stream, feed: f } = feed(inbox);
		f.start(undefined);
		for (const unread of [0, 1, 1, 0, 0, 4]) f.push({ userId: "u", unreadCount: unread });
		await settle();
		expect(stream.counts).toEqual([{ unread: 0 }, { unread: 1 }, { unread: 0 }, { unread: 4 }]);
	});

	it("ends the stream when the inbox cannot be read, so the client resumes rather than skips", async () => {
		const inbox = new Inbox([1, 2, 3]);
		const { stream, errors, feed: f } = feed(inbox);
		f.start(undefined);
		await settle();
		inbox.failing = true;
		f.push({ userId: "u", unreadCount: 1, notice: view(5) });
		f.push({ userId: "u", unreadCount: 1, notice: view(6) });
		await settle();
		expect(stream.closed).toBe(true);
		expect(stream.notices).toEqual([]);
		expect(errors).toHaveLength(1);
		expect(inbox.calls).toEqual(["latest", "since 3"]);
	});
});
