import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import type { JetStreamClient, JetStreamManager, ObjectInfo, PubAck } from "nats";
import { consumerOpts, headers, JsHeaders, nuid } from "nats";
import type { StoredBlob } from "./store.ts";

/**
 * An object's bytes in a NATS Object Store, written and read in the store's own format (chunks on
 * `$O.<bucket>.C.<nuid>`, then the entry on `$O.<bucket>.M.<name, base64url>` rolling up the
 * one before), so nats.js and every other client read them as any object. Not nats.js's `put` and
 * `get`: those hash in pure JavaScript, which bench:oss profiled at over half of a transfer's CPU
 * (≈ 550 ms per 20 MB, against ≈ 15 ms for Node's SHA-256), and `put` waits for no acknowledgement
 * before taking more bytes. Keys are never written twice (fresh file ids; a move skips a key it
 * has), so a put does not look for an older object's chunks to purge.
 */

/**
 * Largest chunk (within the server's max_payload): twice nats.js's 128 kB. bench:oss measured 1 MB
 * chunks at ≈ 15 ms less CPU per 20 MB (of ≈ 80), but ten uploads at once then grew the node by up to 80 MB.
 */
const MAX_CHUNK_BYTES = 256 * 1024;
/** Chunks a put has sent and not yet seen acknowledged: enough to keep the stream busy, few enough to bound memory. */
const ACKS_IN_FLIGHT = 2;
/** Bytes a read holds ahead of its reader: a few chunks, so the bus and the reader overlap. */
const READ_AHEAD_BYTES = 4 * MAX_CHUNK_BYTES;
const DIGEST_PREFIX = "SHA-256=";

export interface ObjectTarget {
	bucket: string;
	js: JetStreamClient;
	jsm: JetStreamManager;
	/** Bound of each publish's acknowledgement. */
	timeout: number;
	/** The server's max_payload (a chunk is one message). */
	maxPayload: number;
}

const base64url = (bytes: Buffer) => bytes.toString("base64").replace(/\+/g, "-").replace(/\//g, "_");
const metaSubject = (bucket: string, name: string) => `$O.${bucket}.M.${base64url(Buffer.from(name, "latin1"))}`;

/**
 * Writes `body` as object `name`: the SHA-256 taken as the bytes pass, chunks sent as they fill
 * with at most ACKS_IN_FLIGHT unacknowledged, the entry last. Until the entry is written nothing is
 * visible; a body or publish that fails purges the chunks sent (a killed writer's stay unnamed).
 * A chunk is filled in one of a few buffers reused once its acknowledgement came (the client has
 * copied it out by then): a new buffer per chunk was garbage enough to show in the node's RSS.
 */
export async function putObject(target: ObjectTarget, name: string, body: Readable): Promise<StoredBlob> {
	const { bucket, js, timeout } = target;
	const chunkBytes = Math.min(target.maxPayload, MAX_CHUNK_BYTES);
	const id = nuid.next();
	const chunkSubject = `$O.${bucket}.C.${id}`;
	const hash = createHash("sha256");
	const sent: { ack: Promise<PubAck>; chunk: Buffer }[] = [];
	const free: Buffer[] = [];
	const pending: Buffer[] = [];
	let pendingBytes = 0;
	let size = 0;
	let chunks = 0;
	const send = async (chunk: Buffer) => {
		const ack = js.publish(chunkSubject, chunk, { timeout });
		// Awaited below, maybe later than it fails: handled now so the failure is not "unhandled".
		ack.catch(() => undefined);
		sent.push({ ack, chunk });
		chunks++;
		if (sent.length > ACKS_IN_FLIGHT) {
			const oldest = sent.shift()!;
			await oldest.ack;
			free.push(oldest.chunk);
		}
	};
	/** The first chunkBytes of `pending`, copied into a free buffer; the rest stays pending. */
	const fill = (): Buffer => {
		const chunk = free.pop() ?? Buffer.allocUnsafe(chunkBytes);
		let at = 0;
		while (at < chunkBytes) {
			const piece = pending.shift()!;
			const n = piece.copy(chunk, at);
			at += n;
			if (n < piece.length) pending.unshift(piece.subarray(n));
		}
		pendingBytes -= chunkBytes;
		return chunk;
	};
	try {
		for await (const piece of body as AsyncIterable<Buffer>) {
			hash.update(piece);
			size += piece.length;
			pending.push(piece);
			pendingBytes += piece.length;
			while (pendingBytes >= chunkBytes) await send(fill());
		}
		if (pendingBytes) await send(Buffer.concat(pending, pendingBytes));
		await Promise.all(sent.map(s => s.ack));
		const digest = hash.digest();
		const entry = {
			name,
			description: "",
			options: { max_chunk_size: chunkBytes },
			bucket,
			nuid: id,
			size,
			chunks,
			mtime: new Date().toISOString(),
			digest: `${DIGEST_PREFIX}${base64url(digest)}`,
			deleted: false
		};
		const h = headers();
		h.set(JsHeaders.RollupHdr, JsHeaders.RollupValueSubject);
		await js.publish(metaSubject(bucket, name), JSON.stringify(entry), { headers: h, timeout });
		return { size, sha256: digest.toString("hex") };
	} catch (err) {
		await Promise.allSettled(sent.map(s => s.ack));
		await target.jsm.streams.purge(`OBJ_${bucket}`, { filter: chunkSubject }).catch(() => undefined);
		throw err;
	}
}

/**
 * The bytes of the object `info` describes, as its chunks arrive (an ordered consumer, as nats.js
 * reads them); the stream fails if their SHA-256 is not the entry's digest. Chunks are taken from
 * the consumer only as fast as the stream is read: the consumer's flow control then holds the
 * server back, so a slow reader does not gather the whole object in memory (nats.js's `get` does).
 * Destroying the stream stops the consumer.
 */
export async function readObject(target: ObjectTarget, info: ObjectInfo): Promise<Readable> {
	if (info.size === 0) return Readable.from([]);
	const expected = info.digest.startsWith(DIGEST_PREFIX) ? info.digest.slice(DIGEST_PREFIX.length).replace(/=+$/, "") : undefined;
	if (!expected) throw new Error(`object ${info.name} has a digest of unknown type: ${info.digest}`);
	const sub = await target.js.subscribe(`$O.${target.bucket}.C.${info.nuid}`, consumerOpts().orderedConsumer());
	const hash = createHash("sha256");
	let wanted: (() => void) | undefined;
	const more = () => {
		wanted?.();
		wanted = undefined;
	};
	const bytes = new Readable({
		highWaterMark: READ_AHEAD_BYTES,
		read: more,
		destroy(err, done) {
			sub.unsubscribe();
			more();
			done(err);
		}
	});
	(async () => {
		let whole = false;
		for await (const m of sub) {
			if (m.info.pending === 0) {
				sub.unsubscribe();
				whole = true;
			}
			const chunk = Buffer.from(m.data.buffer, m.data.byteOffset, m.data.length);
			hash.update(chunk);
			if (whole) {
				if (base64url(hash.digest()).replace(/=+$/, "") !== expected) throw new Error(`object ${info.name}: its bytes do not match its digest`);
				bytes.push(chunk);
				bytes.push(null);
			} else if (!bytes.push(chunk)) await new Promise<void>(resolve => (wanted = resolve));
		}
		if (!whole && !bytes.destroyed) throw new Error(`object ${info.name}: its chunks stopped coming`);
	})().catch((err: Error) => bytes.destroy(err));
	return bytes;
}
