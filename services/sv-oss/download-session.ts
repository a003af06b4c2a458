import type { Readable } from "node:stream";
import { TransferPartInvalidError } from "./errors.ts";
import { PART_BYTES, WINDOW } from "./pacing.ts";

/**
 * One paced download at the home: the store's reader of the file (or range), cut into parts of
 * PART_BYTES (the last shorter), each given only when the gateway asks for it. The reader is read
 * no faster than parts are asked for, and the store reads ahead of it a few chunks at most (a
 * folder's read stream, or object-chunks.ts's bounded consumer). Asks may arrive out of order
 * within the window; parts are cut in order.
 */
export class DownloadSession {
	readonly parts: number;
	private readonly reader: Readable;
	private next = 0;
	private readonly asked = new Map<number, { resolve(b: Buffer): void; reject(err: Error): void }>();
	private cutting = false;
	private failure?: Error;

	constructor(reader: Readable, bytes: number) {
		this.reader = reader;
		this.parts = Math.ceil(bytes / PART_BYTES);
		// A failing read is answered to the parts asked; the reader's error event has no one else to tell.
		reader.on("error", err => this.fail(err));
	}

	/** Part `seq`'s bytes, once the parts before it were cut. */
	part(seq: number): Promise<Buffer> {
		if (this.failure) return Promise.reject(this.failure);
		if (seq < this.next || seq >= Math.min(this.next + WINDOW, this.parts) || this.asked.has(seq))
			return Promise.reject(new TransferPartInvalidError(`part ${seq} is not one of the next ${WINDOW} of ${this.parts} from ${this.next} on`));
		const answer = new Promise<Buffer>((resolve, reject) => this.asked.set(seq, { resolve, reject }));
		void this.cut();
		return answer;
	}

	/** True once every part has been cut. */
	get done(): boolean {
		return this.next >= this.parts;
	}

	fail(err: Error): void {
		if (this.failure) return;
		this.failure = err;
		for (const ask of this.asked.values()) ask.reject(err);
		this.asked.clear();
		this.reader.destroy();
	}

	/** Cuts the parts asked for, in order, one cutter at a time. */
	private async cut(): Promise<void> {
		if (this.cutting) return;
		this.cutting = true;
		try {
			for (let ask = this.asked.get(this.next); ask && !this.failure; ask = this.asked.get(this.next)) {
				const bytes = await this.read(this.next === this.parts - 1 ? undefined : PART_BYTES);
				if (this.failure) return;
				this.asked.delete(this.next++);
				ask.resolve(bytes);
			}
			if (this.done) this.reader.destroy();
		} catch (err) {
			this.fail(err as Error);
		} finally {
			this.cutting = false;
		}
	}

	/** The next `n` bytes of the reader (all that is left when undefined). */
	private async read(n: number | undefined): Promise<Buffer> {
		const pieces: Buffer[] = [];
		let have = 0;
		for (;;) {
			if (this.failure) throw this.failure;
			const piece = this.reader.read(n === undefined ? undefined : Math.min(n - have, this.reader.readableLength || n - have)) as Buffer | null;
			if (piece) {
				pieces.push(piece);
				have += piece.length;
				if (n !== undefined && have >= n) return Buffer.concat(pieces, have);
				continue;
			}
			if (this.reader.readableEnded) {
				if (n !== undefined) throw new Error(`the file ended ${n - have} bytes short of its part`);
				return Buffer.concat(pieces, have);
			}
			await new Promise<void>(resolve => {
				const go = () => {
					this.reader.off("readable", go).off("end", go).off("close", go);
					resolve();
				};
				this.reader.on("readable", go).on("end", go).on("close", go);
			});
		}
	}
}
