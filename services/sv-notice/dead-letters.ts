import { ChannelError } from "../../mixins/channels/errors.ts";
import type { DeadLetter } from "../../mixins/channels/store.ts";
import type { ExternalChannel } from "./categories.ts";
import { EXTERNAL_CHANNELS } from "./categories.ts";
import type { Delivery } from "./providers.ts";

/**
 * The dead letters of the notice channels (`notice.email`, `notice.webhook`) of one region, for
 * ops: the REPL's `notice dlq …` and api-cms's routes, both through `$channels` (the `channels`
 * capability). A dead letter shows whose notice it is and why it failed, not its bodies.
 */

/** Calls `$channels.*` in the region whose dead letters are wanted. */
export type ChannelsCall = <T>(action: string, params: Record<string, unknown>) => Promise<T>;

export interface NoticeDeadLetter {
	id: string;
	channel: ExternalChannel;
	noticeId: string;
	userId: string;
	category: string;
	title: string;
	error: string;
	errorType: string | null;
	attempts: number;
	/** When it was given up on. */
	at: string;
}

export interface NoticeReplay {
	id: string;
	channel: ExternalChannel;
	/** The message it was stored again as. */
	replayedAs: string;
}

function view(channel: ExternalChannel, d: DeadLetter): NoticeDeadLetter {
	const p = JSON.parse(d.payload) as Partial<Delivery>;
	return {
		id: d.id,
		channel,
		noticeId: p.noticeId ?? "",
		userId: p.userId ?? "",
		category: p.category ?? "",
		title: p.title ?? "",
		error: d.error,
		errorType: d.errorType ?? null,
		attempts: d.attempts,
		at: new Date(d.at).toISOString()
	};
}

/** The latest dead letters of both channels first, at most `limit`. */
export async function noticeDeadLetters(call: ChannelsCall, limit: number): Promise<NoticeDeadLetter[]> {
	const pages = await Promise.all(
		EXTERNAL_CHANNELS.map(async channel =>
			(await call<DeadLetter[]>("$channels.deadLetters", { channel: `notice.${channel}`, limit })).map(d => view(channel, d))
		)
	);
	return pages
		.flat()
		.sort((a, b) => b.at.localeCompare(a.at))
		.slice(0, limit);
}

/** Delivers a dead letter again (to sv-notice, which tries its provider anew); DEAD_LETTER_NOT_FOUND if neither channel has it. */
export async function replayNoticeDeadLetter(call: ChannelsCall, id: string): Promise<NoticeReplay> {
	for (const channel of EXTERNAL_CHANNELS) {
		try {
			const replayed = await call<{ id: string }>("$channels.replay", { channel: `notice.${channel}`, id });
			return { id, channel, replayedAs: replayed.id };
		} catch (err) {
			if ((err as { type?: string }).type !== "DEAD_LETTER_NOT_FOUND") throw err;
		}
	}
	throw new ChannelError("DEAD_LETTER_NOT_FOUND", `no notice dead letter ${id}`, { id });
}
