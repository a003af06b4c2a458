import type { ChannelsCall } from "../../services/sv-notice/dead-letters.ts";
import { noticeDeadLetters, replayNoticeDeadLetter } from "../../services/sv-notice/dead-letters.ts";
import type { ReplContext } from "./context.ts";
import type { Subcommand } from "./region.command.ts";

const DLQ_USAGE = "notice dlq list | notice dlq replay <id>";
/** Dead letters one listing shows, newest first. */
const DLQ_PAGE = 20;

/**
 * `notice …` sub-commands, by name: the dead letters of the notice channels (e-mail, webhook) of the
 * REPL's region, over `$channels` (its `channels` capability, as `channels dlq` and `replay`).
 */
export function noticeSubcommands({ print }: ReplContext): Record<string, Subcommand> {
	return {
		dlq: {
			usage: DLQ_USAGE,
			async run(broker, [verb, id]) {
				const call: ChannelsCall = (action, params) => broker.call(action, params);
				if (verb === "list") {
					const dead = await noticeDeadLetters(call, DLQ_PAGE);
					if (!dead.length) return print("no notice dead letters in this region");
					for (const d of dead)
						print(
							`${d.id} ${d.channel.padEnd(7)} notice=${d.noticeId} user=${d.userId} attempts=${d.attempts} at=${d.at} error=${d.errorType ? `${d.errorType}: ` : ""}${d.error}`
						);
					return;
				}
				if (verb === "replay" && id) {
					const replayed = await replayNoticeDeadLetter(call, id);
					return print(`replayed ${id} to ${replayed.channel} as ${replayed.replayedAs}`);
				}
				print(`usage: ${DLQ_USAGE}`);
			}
		}
	};
}
