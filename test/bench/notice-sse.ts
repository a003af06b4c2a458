import type { ClientRequest } from "node:http";
import { request } from "node:http";

/**
 * bench:notice's live-stream client: one user's `GET /api/v1/me/notices/stream` held open over
 * node:http, each `notice` event handed on with the time it arrived. Lighter than the tests'
 * EventSource-faithful reader (harness/event-stream.ts): the bench reads thousands of events a
 * second in the process that also sends, and only needs the events' names and data.
 */

export interface NoticeStream {
	/** Resolves once the stream has answered 200 and sent its first event (the unread count). */
	readonly opened: Promise<void>;
	close(): void;
}

/** Opens `userId`'s notice stream on the gateway at `base`; `onNotice(data, at)` for each notice (`at`: performance.now()). */
export function openNoticeStream(base: string, token: string, onNotice: (data: string, at: number) => void): NoticeStream {
	let req: ClientRequest | undefined;
	const opened = new Promise<void>((resolve, reject) => {
		req = request(`${base}/api/v1/me/notices/stream`, { headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" } }, res => {
			if (res.statusCode !== 200) {
				reject(new Error(`notice stream refused: ${res.statusCode}`));
				res.resume();
				return;
			}
			let buffered = "";
			res.setEncoding("utf8");
			res.on("data", (chunk: string) => {
				const at = performance.now();
				buffered += chunk;
				// Events end with a blank line; the last piece may be the start of the next one.
				const blocks = buffered.split("\n\n");
				buffered = blocks.pop()!;
				for (const block of blocks) {
					let event = "message";
					let data = "";
					for (const line of block.split("\n")) {
						if (line.startsWith("event: ")) event = line.slice(7);
						else if (line.startsWith("data: ")) data += line.slice(6);
					}
					if (event === "notice") onNotice(data, at);
					else if (event === "unread-count") resolve();
				}
			});
			res.on("error", reject);
		});
		req.on("error", reject);
		req.end();
	});
	return { opened, close: () => req?.destroy() };
}
