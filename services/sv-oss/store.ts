import { createHash } from "node:crypto";
import type { Readable, TransformCallback } from "node:stream";
import { Transform } from "node:stream";

/** What a store knows of one blob once it is written in full. */
export interface StoredBlob {
	size: number;
	/** SHA-256 of the bytes, lower-case hex. */
	sha256: string;
}

/** Bytes `start`…`end` of a blob, both included (HTTP's `Range` form). */
export interface ByteRange {
	start: number;
	end: number;
}

/**
 * Where a region keeps file bytes: the region's NATS JetStream Object Store (NATS mode,
 * nats-store.ts) or the data folder (embedded, folder-store.ts). Both pass one contract suite
 * (test/unit/services/sv-oss/contract.ts). Keys are `<userId>/<fileId>`.
 */
export interface BlobStore {
	readonly kind: "object-store" | "folder";
	/**
	 * Writes `body` under `key` and answers its size and digest. A blob becomes visible only once
	 * written in full: a body that fails (or a process that dies) leaves nothing `get` or `has` sees.
	 */
	put(key: string, body: Readable): Promise<StoredBlob>;
	/** The blob's bytes (or a range of them), undefined when there is none. */
	get(key: string, range?: ByteRange): Promise<Readable | undefined>;
	has(key: string): Promise<boolean>;
	/** Removes the blob; false when there was none. */
	delete(key: string): Promise<boolean>;
	close(): Promise<void>;
}

/** Counts and hashes what passes through; `result()` once it has ended. */
export class Digesting extends Transform {
	private readonly hash = createHash("sha256");
	private size = 0;

	override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
		this.hash.update(chunk);
		this.size += chunk.length;
		done(null, chunk);
	}

	result(): StoredBlob {
		return { size: this.size, sha256: this.hash.digest("hex") };
	}
}

/**
 * Passes bytes `start`…`end` of what flows through (the source starts at byte 0), then ends and
 * calls `past` (which stops the source: the rest need not be read).
 */
export function rangeOf(range: ByteRange, past: () => void = () => undefined): Transform {
	let at = 0;
	let ended = false;
	return new Transform({
		transform(chunk: Buffer, _enc, done: TransformCallback) {
			if (ended) return done();
			const from = Math.max(range.start - at, 0);
			const to = Math.min(range.end + 1 - at, chunk.length);
			at += chunk.length;
			if (from < to) this.push(chunk.subarray(from, to));
			if (at > range.end) {
				ended = true;
				this.push(null);
				past();
			}
			done();
		}
	});
}

/** Keys as stores accept them: `<userId>/<fileId>`, nothing that walks a path. */
const KEY = /^[0-9A-Za-z]{1,32}\/[0-9a-f-]{36}$/;

export function checkKey(key: string): string {
	if (!KEY.test(key)) throw new Error(`not a blob key: ${JSON.stringify(key)}`);
	return key;
}
