import { spawn } from "node:child_process";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { join } from "node:path";
import type { NatsConnection } from "nats";
import { connect, headers, JsHeaders } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bucketOf, openObjectStore } from "../../../services/sv-oss/nats-store.ts";
import type { BlobStore } from "../../../services/sv-oss/store.ts";
import { REAL, runId } from "../../harness/real-servers.ts";
import { within } from "../../harness/waiting.ts";
import { blobStoreContract, bytesOf, streamOf } from "../../unit/services/sv-oss/store-contract.ts";

const bucket = bucketOf(`t${runId()}`);
const stream = `OBJ_${bucket}`;
const key = () => `USER${randomBytes(4).toString("hex").toUpperCase()}/${randomUUID()}`;
const metaSubject = (k: string) => `$O.${bucket}.M.${Buffer.from(k).toString("base64").replace(/\+/g, "-").replace(/\//g, "_")}`;

blobStoreContract("NATS JetStream Object Store", () => openObjectStore({ servers: REAL.nats, bucket }));

describe("NATS JetStream Object Store: its own format", () => {
	let nc: NatsConnection;
	let store: BlobStore;
	beforeAll(async () => {
		nc = await connect({ servers: REAL.nats });
		store = await openObjectStore({ servers: REAL.nats, bucket });
	});
	afterAll(async () => {
		await store?.close();
		await (await nc.jetstreamManager()).streams.delete(stream).catch(() => undefined);
		await nc.close();
	});

	it("keeps a blob of many chunks, sent in uneven pieces, as an object nats.js itself reads and checks", async () => {
		const data = randomBytes(6 * 1024 * 1024 + 4321);
		const k = key();
		expect(await store.put(k, streamOf(data, 50_000))).toEqual({ size: data.length, sha256: createHash("sha256").update(data).digest("hex") });
		expect((await bytesOf((await store.get(k))!)).equals(data)).toBe(true);
		const os = await nc.jetstream().views.os(bucket);
		const info = (await os.info(k))!;
		expect(info.chunks).toBeGreaterThan(4);
		const theirs = (await os.get(k))!;
		const parts: Uint8Array[] = [];
		for await (const part of theirs.data) parts.push(part);
		// nats.js checks the digest as it reads: a mismatch would have failed the loop above.
		expect(await theirs.error).toBeUndefined();
		expect(Buffer.concat(parts).equals(data)).toBe(true);
	});

	it("holds only a few chunks ahead of a reader that does not read, and gives every byte once it does", async () => {
		const data = randomBytes(8 * 1024 * 1024);
		const k = key();
		await store.put(k, streamOf(data));
		const bytes = (await store.get(k))!;
		await new Promise(r => setTimeout(r, 1000));
		expect(bytes.readableLength).toBeLessThanOrEqual(2 * 1024 * 1024);
		expect((await bytesOf(bytes)).equals(data)).toBe(true);
	});

	it("fails a read whose bytes are not the ones its digest names", async () => {
		const k = key();
		await store.put(k, streamOf(randomBytes(300 * 1024)));
		const entry = JSON.parse(Buffer.from((await (await nc.jetstreamManager()).streams.getMessage(stream, { last_by_subj: metaSubject(k) })).data).toString());
		const h = headers();
		h.set(JsHeaders.RollupHdr, JsHeaders.RollupValueSubject);
		await nc
			.jetstream()
			.publish(metaSubject(k), JSON.stringify({ ...entry, digest: `SHA-256=${createHash("sha256").update("other bytes").digest("base64url")}=` }), {
				headers: h
			});
		await expect(bytesOf((await store.get(k))!)).rejects.toThrow(/do not match its digest/);
	});

	it("shows nothing of a blob whose writer was killed (kill -9) half way", async () => {
		const k = key();
		const jsm = await nc.jetstreamManager();
		const before = (await jsm.streams.info(stream)).state.messages;
		const child = spawn(process.execPath, [join(import.meta.dirname, "../../unit/services/sv-oss/object-put-child.ts"), REAL.nats, bucket, k], {
			stdio: "inherit"
		});
		try {
			await within(async () => (await jsm.streams.info(stream)).state.messages >= before + 2, 20_000);
		} finally {
			child.kill("SIGKILL");
		}
		await new Promise(r => (child.exitCode === null && child.signalCode === null ? child.once("exit", r) : r(null)));
		expect(await store.has(k)).toBe(false);
		expect(await store.get(k)).toBeUndefined();
		// The key is free: a later put of it is whole.
		const data = randomBytes(2 * 1024 * 1024);
		await store.put(k, streamOf(data));
		expect((await bytesOf((await store.get(k))!)).equals(data)).toBe(true);
	}, 60_000);
});
