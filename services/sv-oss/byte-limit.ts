import type { TransformCallback } from "node:stream";
import { Transform } from "node:stream";

/** Fails the stream with `refusal()` as soon as more than `max` bytes have come, before they go on. */
export class ByteLimit extends Transform {
	count = 0;
	private readonly max: number;
	private readonly refusal: () => Error;

	constructor(max: number, refusal: () => Error) {
		super();
		this.max = max;
		this.refusal = refusal;
	}

	override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
		this.count += chunk.length;
		if (this.count > this.max) done(this.refusal());
		else done(null, chunk);
	}
}
