import { randomUUID } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, rename, rm, stat, unlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { BlobStore, ByteRange, StoredBlob } from "./store.ts";
import { checkKey, Digesting } from "./store.ts";

/** Where a write in progress lives: beside the blobs, so the rename that publishes it stays on one file system. */
const PARTIAL = ".partial";

/**
 * Blobs as files under one folder (embedded mode: `<data>/<region>.files/`), each `<userId>/<fileId>`.
 * A write goes to `.partial/` and is renamed into place once flushed to disk, so a reader never sees
 * half a file; what a killed process left in `.partial/` is removed when the store opens again.
 */
export async function openFolderStore(root: string): Promise<BlobStore> {
	await mkdir(root, { recursive: true, mode: 0o700 });
	await rm(join(root, PARTIAL), { recursive: true, force: true });
	await mkdir(join(root, PARTIAL), { mode: 0o700 });
	const pathOf = (key: string) => join(root, checkKey(key));

	return {
		kind: "folder",
		async put(key: string, body: Readable): Promise<StoredBlob> {
			const target = pathOf(key);
			const partial = join(root, PARTIAL, randomUUID());
			const digest = new Digesting();
			try {
				await pipeline(body, digest, createWriteStream(partial, { mode: 0o600, flush: true }));
				await mkdir(dirname(target), { recursive: true, mode: 0o700 });
				await rename(partial, target);
			} catch (err) {
				await unlink(partial).catch(() => undefined);
				throw err;
			}
			return digest.result();
		},
		async get(key: string, range?: ByteRange): Promise<Readable | undefined> {
			const path = pathOf(key);
			const stream = createReadStream(path, range ? { start: range.start, end: range.end } : {});
			// Opened before answering, so a missing blob is `undefined` rather than a stream that fails.
			return new Promise((resolve, reject) => {
				stream.once("open", () => resolve(stream));
				stream.once("error", (err: NodeJS.ErrnoException) => (err.code === "ENOENT" ? resolve(undefined) : reject(err)));
			});
		},
		async has(key: string): Promise<boolean> {
			return stat(pathOf(key)).then(
				s => s.isFile(),
				() => false
			);
		},
		async delete(key: string): Promise<boolean> {
			return unlink(pathOf(key)).then(
				() => true,
				(err: NodeJS.ErrnoException) => {
					if (err.code === "ENOENT") return false;
					throw err;
				}
			);
		},
		async close() {}
	};
}
