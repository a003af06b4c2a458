import { createHash, randomBytes, randomUUID } from "node:crypto";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BlobStore } from "../../../../services/sv-oss/store.ts";

/** Everything a readable gives, as one Buffer. */
export async function bytesOf(stream: Readable): Promise<Buffer> {
	const parts: Buffer[] = [];
	for await (const chunk of stream) parts.push(chunk as Buffer);
	return Buffer.concat(parts);
}

/** `data` as a stream of `chunk`-byte pieces, failing after `failAfter` bytes when given. */
export function streamOf(data: Buffer, chunk = 64 * 1024, failAfter?: number): Readable {
	let at = 0;
	return new Readable({
		read() {
			if (failAfter !== undefined && at >= failAfter) return this.destroy(new Error("client went away"));
			if (at >= data.length) return this.push(null);
			this.push(data.subarray(at, (at += chunk)));
		}
	});
}

/** `size` bytes of text made from a seed, streamed (in 64 kB pieces) without being held whole, and their SHA-256. */
export function textOf(size: number, seed: string): { stream: () => Readable; sha256: string; at: (start: number, end: number) => Buffer } {
	const line = Buffer.from(`${seed} ${"x".repeat(1000)}\n`);
	const chunk = Buffer.concat(Array.from({ length: 64 }, () => line));
	const hash = createHash("sha256");
	for (let at = 0; at < size; at += chunk.length) hash.update(chunk.subarray(0, Math.min(chunk.length, size - at)));
	return {
		sha256: hash.digest("hex"),
		stream: () => {
			let at = 0;
			return new Readable({
				read() {
					if (at >= size) return this.push(null);
					const n = Math.min(chunk.length, size - at);
					at += n;
					this.push(chunk.subarray(0, n));
				}
			});
		},
		/** Bytes `start`…`end` (both included). */
		at: (start, end) => {
			const out = Buffer.alloc(end - start + 1);
			for (let i = start; i <= end; i++) out[i - start] = chunk[i % chunk.length]!;
			return out;
		}
	};
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const key = () => `USER${randomBytes(4).toString("hex").toUpperCase()}/${randomUUID()}`;

/** The rules every blob store keeps, run on each (the data folder, the NATS Object Store). */
export function blobStoreContract(name: string, open: () => Promise<BlobStore>, cleanup: () => Promise<void> = async () => undefined): void {
	describe(`blob store: ${name}`, () => {
		let store: BlobStore;
		beforeAll(async () => {
			store = await open();
		});
		afterAll(async () => {
			await store?.close();
			await cleanup();
		});

		it("keeps what was put, byte for byte, and answers its size and SHA-256", async () => {
			const data = randomBytes(700 * 1024 + 13);
			const k = key();
			expect(await store.put(k, streamOf(data))).toEqual({ size: data.length, sha256: sha(data) });
			expect(await store.has(k)).toBe(true);
			expect((await bytesOf((await store.get(k))!)).equals(data)).toBe(true);
		});

		it("keeps an empty blob", async () => {
			const k = key();
			expect(await store.put(k, streamOf(Buffer.alloc(0)))).toEqual({ size: 0, sha256: sha(Buffer.alloc(0)) });
			expect((await bytesOf((await store.get(k))!)).length).toBe(0);
		});

		it("answers a range of bytes, both ends included, across chunk boundaries", async () => {
			const data = randomBytes(400 * 1024);
			const k = key();
			await store.put(k, streamOf(data));
			for (const [start, end] of [
				[0, 0],
				[10, 131_072 + 9],
				[300_000, data.length - 1]
			] as const)
				expect((await bytesOf((await store.get(k, { start, end }))!)).equals(data.subarray(start, end + 1)), `${start}-${end}`).toBe(true);
		});

		it("shows nothing of a put whose body failed half way, and a second put of the key then works", async () => {
			const data = randomBytes(300 * 1024);
			const k = key();
			await expect(store.put(k, streamOf(data, 64 * 1024, 200 * 1024))).rejects.toThrow(/went away/);
			expect(await store.has(k)).toBe(false);
			expect(await store.get(k)).toBeUndefined();
			await store.put(k, streamOf(data));
			expect((await bytesOf((await store.get(k))!)).equals(data)).toBe(true);
		});

		it("deletes a blob once: it is gone, a second delete says so", async () => {
			const k = key();
			await store.put(k, streamOf(randomBytes(1000)));
			expect(await store.delete(k)).toBe(true);
			expect(await store.has(k)).toBe(false);
			expect(await store.get(k)).toBeUndefined();
			expect(await store.delete(k)).toBe(false);
		});

		it("refuses a key that could walk out of its place", async () => {
			await expect(store.put("../etc/passwd", streamOf(Buffer.from("x")))).rejects.toThrow(/not a blob key/);
			await expect(store.get(`USER/../${randomUUID()}`)).rejects.toThrow(/not a blob key/);
		});
	});
}
