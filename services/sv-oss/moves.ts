import type { Readable } from "node:stream";
import type { FileRow, FileRows } from "./files.ts";
import { blobKey } from "./files.ts";
import type { BlobStore } from "./store.ts";

/** A file's row as a move carries it: with the region its bytes are fetched from. */
export interface MovedFile extends FileRow {
	from: string;
}

/**
 * A user's files as a move carries them: the rows go through the mover's export and import; the
 * bytes are streamed by the new home from the old one before the import (`fetch`), each checked
 * against the row's SHA-256 and size, and deleted from the old home once its rows are.
 */
export class FileMoves {
	private readonly rows: FileRows;
	private readonly blobs: BlobStore;
	private readonly region: string;

	constructor(rows: FileRows, blobs: BlobStore, region: string) {
		this.rows = rows;
		this.blobs = blobs;
		this.region = region;
	}

	async export(userId: string): Promise<MovedFile[]> {
		return (await this.rows.all(userId)).map(r => ({ ...r, from: this.region }));
	}

	/**
	 * Brings the bytes of `files` here, those not here yet (a retried import finds some), each
	 * streamed from its region by `open` and kept only if its digest and size are the row's.
	 */
	async fetch(files: MovedFile[], open: (file: MovedFile) => Promise<Readable>): Promise<void> {
		for (const file of files) {
			const key = blobKey(file.user_id, file.id);
			if (await this.blobs.has(key)) continue;
			const stored = await this.blobs.put(key, await open(file));
			if (stored.sha256 !== file.sha256 || stored.size !== Number(file.size)) {
				await this.blobs.delete(key);
				throw new Error(`file ${file.id} arrived as ${stored.size} bytes, SHA-256 ${stored.sha256}; its row says ${file.size}, ${file.sha256}`);
			}
		}
	}

	async import(userId: string, files: unknown[]): Promise<void> {
		await this.rows.replace(
			userId,
			(files as MovedFile[]).map(({ from: _from, ...row }) => ({ ...row, user_id: userId }))
		);
	}

	count(userId: string): Promise<number> {
		return this.rows.countOf(userId);
	}

	/** Deletes the rows (in the fenced move step); the keys of their bytes, to delete once that has committed. */
	async remove(userId: string): Promise<number> {
		const n = await this.rows.countOf(userId);
		await this.rows.removeAll(userId);
		return n;
	}

	async keysOf(userId: string): Promise<string[]> {
		return (await this.rows.all(userId)).map(r => blobKey(userId, r.id));
	}

	async dropBlobs(keys: string[]): Promise<void> {
		for (const key of keys) await this.blobs.delete(key);
	}
}
