import type { Readable } from "node:stream";
import type { ConnectionOptions, NatsConnection, ObjectStore } from "nats";
import { connect, StorageType } from "nats";
import type { ObjectTarget } from "./object-chunks.ts";
import { putObject, readObject } from "./object-chunks.ts";
import type { BlobStore, ByteRange, StoredBlob } from "./store.ts";
import { checkKey, rangeOf } from "./store.ts";

export interface ObjectStoreOptions {
	servers: string;
	/** The bucket: one per region namespace, so test runs sharing a server never meet. */
	bucket: string;
	/** The region's JetStream domain, when it has one. */
	domain?: string;
	replicas?: number;
	/** The node's bus login and TLS (regions/runtime/bus-credentials.ts). */
	credentials?: Partial<ConnectionOptions>;
	name?: string;
	/** Bound of each JetStream request (a chunk's acknowledgement, say). */
	timeoutMs?: number;
}

/** A bucket name NATS accepts, from a namespace: `files-<namespace>` with anything else as `-`. */
export function bucketOf(namespace: string): string {
	return `files-${namespace}`.replace(/[^A-Za-z0-9_-]/g, "-");
}

/**
 * Blobs in the region's NATS JetStream Object Store (nats.js `js.views.os`, its bytes written and
 * read by object-chunks.ts): chunks of 256 kB (the server's max_payload at most) with a SHA-256
 * digest checked when a blob is read in full. An object's entry is written only after its last
 * chunk, so a blob is visible whole or not at all; a put that fails purges its chunks (those of a
 * killed writer stay in the stream, unreachable and unnamed).
 */
export async function openObjectStore(opts: ObjectStoreOptions): Promise<BlobStore> {
	const timeout = opts.timeoutMs ?? 5000;
	const nc: NatsConnection = await connect({
		servers: opts.servers,
		...opts.credentials,
		name: opts.name,
		timeout,
		maxReconnectAttempts: -1,
		reconnectTimeWait: 500
	});
	let os: ObjectStore;
	let target: ObjectTarget;
	try {
		const js = nc.jetstream({ timeout, domain: opts.domain });
		os = await js.views.os(opts.bucket, { replicas: opts.replicas ?? 1, storage: StorageType.File });
		const jsm = await nc.jetstreamManager({ timeout, domain: opts.domain, checkAPI: false });
		target = { bucket: opts.bucket, js, jsm, timeout, maxPayload: nc.info?.max_payload ?? 1024 * 1024 };
	} catch (err) {
		await nc.close();
		throw err;
	}

	/** A deleted object keeps an entry that says so. */
	const has = async (key: string) => {
		const info = await os.info(checkKey(key));
		return info !== null && !info.deleted;
	};

	return {
		kind: "object-store",
		async put(key: string, body: Readable): Promise<StoredBlob> {
			return putObject(target, checkKey(key), body);
		},
		async get(key: string, range?: ByteRange): Promise<Readable | undefined> {
			const info = await os.info(checkKey(key));
			if (!info || info.deleted) return undefined;
			// The digest check ends the stream with an error when the bytes are not the ones put.
			const bytes = await readObject(target, info);
			if (!range) return bytes;
			const part = rangeOf(range, () => bytes.destroy());
			bytes.on("error", err => part.destroy(err));
			return bytes.pipe(part);
		},
		has,
		async delete(key: string): Promise<boolean> {
			if (!(await has(key))) return false;
			await os.delete(key);
			return true;
		},
		async close() {
			await nc.drain().catch(() => nc.close());
		}
	};
}
