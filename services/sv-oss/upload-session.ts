import { PassThrough } from "node:stream";
import { TransferPartInvalidError } from "./errors.ts";
import { UPLOAD_HIGH_WATER, WINDOW } from "./pacing.ts";

/**
 * One paced upload at the home: its parts, put in order, become `body`, which the usual streamed
 * upload reads into the store. A part is answered once the body has room again (below
 * UPLOAD_HIGH_WATER), so a sender with WINDOW parts in flight goes only as fast as the store takes
 * them. Parts may arrive out of order within the window; they wait until those before have come.
 */
export class UploadSession {
	readonly body = new PassThrough({ highWaterMark: UPLOAD_HIGH_WATER });
	/** What the store made of the body: settled when the body ended (or failed). */
	result: Promise<unknown> = Promise.resolve();
	private next = 0;
	private readonly early = new Map<number, Buffer>();
	private earlyBytes = 0;
	private failure?: Error;
	private readonly waiting = new Set<() => void>();

	constructor() {
		// A failure is answered through `result` and the parts; the body's own error event has no one else to tell.
		this.body.on("error", () => undefined);
		this.body.on("drain", () => this.wake());
		this.body.on("close", () => this.wake());
	}

	/** Bytes this upload holds that the store has not taken yet. */
	held(): number {
		return this.earlyBytes + this.body.writableLength + this.body.readableLength;
	}

	/** Takes part `seq`; resolves once the body has room for more, rejects with the upload's failure if it has one. */
	async part(seq: number, bytes: Buffer): Promise<void> {
		if (this.failure) throw this.failure;
		if (seq < this.next || seq >= this.next + WINDOW || this.early.has(seq))
			throw new TransferPartInvalidError(`part ${seq} is not one of the ${WINDOW} expected from ${this.next} on`);
		this.early.set(seq, bytes);
		this.earlyBytes += bytes.length;
		for (let part = this.early.get(this.next); part; part = this.early.get(this.next)) {
			this.early.delete(this.next++);
			this.earlyBytes -= part.length;
			this.body.write(part);
		}
		while (this.body.writableNeedDrain && !this.failure) await new Promise<void>(resolve => this.waiting.add(resolve));
		if (this.failure) throw this.failure;
	}

	/** Ends the body after `parts` parts (all of them come): what the store answers. */
	end(parts: number): Promise<unknown> {
		if (this.failure) return Promise.reject(this.failure);
		if (parts !== this.next || this.early.size) throw new TransferPartInvalidError(`${this.next} parts came in order, not the ${parts} announced`);
		this.body.end();
		return this.result;
	}

	/** Ends the upload with `err`: the body fails, so the store drops what it wrote; waiting parts get `err`. */
	fail(err: Error): void {
		if (this.failure) return;
		this.failure = err;
		this.early.clear();
		this.earlyBytes = 0;
		this.body.destroy(err);
		this.wake();
	}

	private wake(): void {
		for (const resolve of this.waiting) resolve();
		this.waiting.clear();
	}
}
