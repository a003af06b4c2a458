import { Readable } from "node:stream";

/** An upload's body that never ends: 64 kB every `everyMs`; `started()` once `after` pieces went, where a crash test kills its process. */
export function endlessBody(everyMs: number, after: number, started: () => void): Readable {
	const chunk = Buffer.alloc(64 * 1024, 97);
	let sent = 0;
	return new Readable({
		read() {
			setTimeout(() => {
				this.push(chunk);
				if (++sent === after) started();
			}, everyMs);
		}
	});
}
