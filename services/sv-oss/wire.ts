import type { Readable, TransformCallback } from "node:stream";
import { Transform } from "node:stream";

/**
 * File bytes as they cross the service bus. Moleculer sends a stream chunk by chunk, each in a
 * packet its JSON serializer writes; a Buffer there becomes an array of numbers (about 3.5 bytes
 * per byte, and slow to write and parse), a string is copied as is. So bytes travel as base64
 * strings in an object-mode stream, and are turned back into Buffers where they are used. A call
 * within one process needs none of it: the bytes go as they are, and `fromWire` passes them on.
 */

/** Bytes per base64 string sent: a multiple of 3 (no padding inside the stream), under Moleculer's 256 kB chunk. */
const WIRE_CHUNK = 192 * 1024;

export function toWire(bytes: Readable): Readable {
	let rest: Buffer = Buffer.alloc(0);
	const encode = new Transform({
		readableObjectMode: true,
		transform(chunk: Buffer, _enc, done: TransformCallback) {
			let data = rest.length ? Buffer.concat([rest, chunk]) : chunk;
			while (data.length >= WIRE_CHUNK) {
				this.push(data.subarray(0, WIRE_CHUNK).toString("base64"));
				data = data.subarray(WIRE_CHUNK);
			}
			// Copied: the source may reuse its buffer once this callback returns.
			rest = Buffer.from(data);
			done();
		},
		flush(done: TransformCallback) {
			if (rest.length) this.push(rest.toString("base64"));
			done();
		}
	});
	bytes.on("error", err => encode.destroy(err));
	return bytes.pipe(encode);
}

export function fromWire(wire: Readable): Readable {
	const decode = new Transform({
		writableObjectMode: true,
		transform(chunk: string | Buffer, _enc, done: TransformCallback) {
			done(null, typeof chunk === "string" ? Buffer.from(chunk, "base64") : chunk);
		}
	});
	wire.on("error", err => decode.destroy(err));
	return wire.pipe(decode);
}
