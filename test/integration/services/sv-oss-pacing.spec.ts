import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline, Transform, Writable } from "node:stream";
import { connect } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FileView } from "../../../services/sv-oss/files.ts";
import { bucketOf } from "../../../services/sv-oss/nats-store.ts";
import type { PacedOptions } from "../../../services/sv-oss/paced-calls.ts";
import { downloadHome, GATEWAY_HELD, uploadHome } from "../../../services/sv-oss/paced-calls.ts";
import type { Sessions } from "../../../services/sv-oss/pacing.ts";
import { PART_BYTES, WINDOW } from "../../../services/sv-oss/pacing.ts";
import type { BlobStore } from "../../../services/sv-oss/store.ts";
import type { UploadSession } from "../../../services/sv-oss/upload-session.ts";
import type { KvNode } from "../../harness/kv-node.ts";
import { startKvNode } from "../../harness/kv-node.ts";
import { cleanupRealStores, deleteKvBucket, REAL, realStores, runId } from "../../harness/real-servers.ts";
import { within } from "../../harness/waiting.ts";
import { textOf } from "../../unit/services/sv-oss/store-contract.ts";

/*
 * Paced transfers as deployed: two region nodes on the real NATS server, cn-east's (the gateway's
 * end, no sv-oss) and ap-south's (the home, its files in the region's NATS Object Store), every
 * part call signed with the `files` key and checked. 20 MB up into a store slowed to ~10 MB/s, and
 * back down to a writer taking ~8 MB/s: each end holds a few parts at most, and so does the whole
 * way between the faster side and the slower one (bytes taken from the one, not yet given to the
 * other). Moleculer's own stream across the bus, the way before, had the whole 20 MB on its way in
 * both cases, measured the same way.
 */

const FILE_BYTES = 20 * 1024 * 1024;
const run = runId();
const bucket = `t-${run}-directory`;
const prefix = `pace${run}-`;
const CAPABILITIES = ["mint", "grant", "move", "directory", "login", "config", "channels", "files"];
const env = {
	EDGEHOME_CAPABILITY_KEYS: CAPABILITIES.map(c => `${c}:${randomBytes(32).toString("base64")}`).join(","),
	EDGEHOME_OSS_MAX_FILE_BYTES: String(25 * 1024 * 1024)
};
/** How long the home keeps a transfer that hears nothing: short, for the kill -9 of its gateway. */
const IDLE_MS = 2000;
Object.assign(process.env, {
	EDGEHOME_PII_KEYS: process.env.EDGEHOME_PII_KEYS ?? `k1:${randomBytes(32).toString("base64")}`,
	EDGEHOME_OSS_TRANSFER_IDLE_MS: String(IDLE_MS)
});
const blindIndexKey = randomBytes(32);
const opts: PacedOptions = { timeout: 60_000, idleMs: IDLE_MS };
const objectStream = `OBJ_${bucketOf(`${prefix}ap-south`)}`;
let gateway: KvNode;
let home: KvNode;
let userId: string;

/**
 * What may be on its way between the two ends: the gateway's window of parts, what the home holds
 * once it answered (≤ 2 × UPLOAD_HIGH_WATER), and the stream buffers on either side, this test's
 * own slowing and counting included (up to a part each). The stream before held all 20 MB.
 */
const END_TO_END_BOUND = 3 * 1024 * 1024;

/** Counts the bytes passing through into `counter.n`. */
function counting(counter: { n: number }): Transform {
	return new Transform({
		transform(chunk: Buffer, _enc, done) {
			counter.n += chunk.length;
			done(null, chunk);
		}
	});
}

/** Runs `work`, sampling `sample()` every 5 ms: its highest value. */
async function peakWhile(sample: () => number, work: () => Promise<unknown>): Promise<number> {
	let peak = 0;
	const timer = setInterval(() => {
		peak = Math.max(peak, sample());
	}, 5);
	try {
		await work();
	} finally {
		clearInterval(timer);
	}
	return peak;
}

const usageOf = () => home.node.broker.call<{ files: number; usedBytes: number }, unknown>("sv-oss.usage", { userId });

const oss = () => home.node.broker.getLocalService("sv-oss") as unknown as { blobs: BlobStore; uploads: Sessions<UploadSession> };

beforeAll(async () => {
	// The home keeps its files' rows in the region's MariaDB database, as deployed.
	const start = (region: string, services: string[]) =>
		startKvNode({
			region,
			natsUrl: REAL.nats,
			bucket,
			namespacePrefix: prefix,
			blindIndexKey,
			services,
			env,
			group: "pacing",
			stores: realStores(run, region)
		});
	home = await start("ap-south", ["sv-region", "sv-oss"]);
	gateway = await start("cn-east", ["sv-region"]);
	({ userId } = await gateway.node.broker.call<{ userId: string }, unknown>("sv-region.register", {
		identities: [{ kind: "username", value: `pacer${run}` }],
		country: "SG"
	}));
}, 60_000);

afterAll(async () => {
	await gateway?.stop();
	await home?.stop();
	const nc = await connect({ servers: REAL.nats });
	await (await nc.jetstreamManager()).streams.delete(objectStream).catch(() => undefined);
	await nc.close();
	await deleteKvBucket(bucket);
	await Promise.all(["ap-south", "cn-east"].map(region => cleanupRealStores(realStores(run, region))));
});

describe("sv-oss: paced transfers over NATS", () => {
	let file: FileView;
	const text = textOf(FILE_BYTES, "over the bus");
	const { sha256 } = text;

	it("uploads 20 MB from another region into an Object Store slowed to ~10 MB/s, each end holding a few parts", async () => {
		const blobs = oss().blobs;
		const put = blobs.put;
		const slow = () =>
			new Transform({
				transform(chunk: Buffer, _enc, done) {
					setTimeout(() => done(null, chunk), chunk.length / (10 * 1024));
				}
			});
		const read = { n: 0 };
		const stored = { n: 0 };
		blobs.put = (key: string, body: Readable) =>
			put.call(
				blobs,
				key,
				pipeline(body, slow(), counting(stored), () => undefined)
			);
		GATEWAY_HELD.upload.resetPeak();
		let homePeak = 0;
		const started = Date.now();
		try {
			const onTheWay = await peakWhile(
				() => {
					homePeak = Math.max(
						homePeak,
						...oss()
							.uploads.sessions()
							.map(s => s.held())
					);
					return read.n - stored.n;
				},
				async () => {
					const body = pipeline(text.stream(), counting(read), () => undefined);
					file = await uploadHome(gateway.node.broker, { userId, name: "bus.txt", contentType: "text/plain" }, body, opts);
				}
			);
			const ms = Date.now() - started;
			const mb = (n: number) => (n / 1048576).toFixed(2);
			console.log(`NATS upload: ${ms} ms; on the way at most ${mb(onTheWay)} MB, home held ${mb(homePeak)} MB, gateway ${mb(GATEWAY_HELD.upload.peak)} MB`);
			expect(file).toMatchObject({ size: FILE_BYTES, sha256 });
			expect(ms).toBeGreaterThan(1500);
			expect({ onTheWay: onTheWay <= END_TO_END_BOUND, home: homePeak <= 2 * 1024 * 1024, gateway: GATEWAY_HELD.upload.peak <= WINDOW * PART_BYTES }).toEqual({
				onTheWay: true,
				home: true,
				gateway: true
			});
		} finally {
			blobs.put = put;
		}
		expect(await oss().blobs.has(`${userId}/${file.id}`)).toBe(true);
	}, 60_000);

	it("downloads it to a writer taking ~8 MB/s, the gateway holding a few parts", async () => {
		GATEWAY_HELD.download.resetPeak();
		const blobs = oss().blobs;
		const get = blobs.get;
		const fromStore = { n: 0 };
		blobs.get = async (key, range) => {
			const bytes = await get.call(blobs, key, range);
			return bytes && pipeline(bytes, counting(fromStore), () => undefined);
		};
		const hash = createHash("sha256");
		let got = 0;
		const slowClient = new Writable({
			highWaterMark: 64 * 1024,
			write(chunk: Buffer, _enc, done) {
				hash.update(chunk);
				got += chunk.length;
				setTimeout(done, chunk.length / (8 * 1024));
			}
		});
		const finished = new Promise(resolve => slowClient.on("finish", resolve));
		try {
			const onTheWay = await peakWhile(
				() => fromStore.n - got,
				async () => {
					await downloadHome(gateway.node.broker, { userId, id: file.id }, slowClient, opts);
					await finished;
				}
			);
			console.log(
				`NATS download: on the way at most ${(onTheWay / 1048576).toFixed(2)} MB, gateway held ${(GATEWAY_HELD.download.peak / 1048576).toFixed(2)} MB`
			);
			expect({ got, sha256: hash.digest("hex") }).toEqual({ got: FILE_BYTES, sha256 });
			expect({ onTheWay: onTheWay <= END_TO_END_BOUND, gateway: GATEWAY_HELD.download.peak <= WINDOW * PART_BYTES }).toEqual({ onTheWay: true, gateway: true });
		} finally {
			blobs.get = get;
		}
	}, 60_000);

	it("keeps nothing of an upload whose gateway was killed (kill -9) half way: the home drops it once idle, its chunks purged", async () => {
		const nc = await connect({ servers: REAL.nats });
		const jsm = await nc.jetstreamManager();
		const messages = async () => (await jsm.streams.info(objectStream)).state.messages;
		const before = { usage: await usageOf(), messages: await messages() };
		const child = spawn(
			process.execPath,
			[join(import.meta.dirname, "../../unit/services/sv-oss/paced-upload-child.ts"), REAL.nats, bucket, prefix, blindIndexKey.toString("hex"), userId],
			{ env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "inherit"] }
		);
		try {
			await new Promise<void>((resolve, reject) => {
				child.stdout.once("data", () => resolve());
				child.once("exit", code => reject(new Error(`the child ended first (${code})`)));
			});
			expect(oss().uploads.size).toBe(1);
			expect(await messages()).toBeGreaterThan(before.messages);
		} finally {
			child.kill("SIGKILL");
		}
		await within(() => oss().uploads.size === 0, IDLE_MS * 3);
		await within(async () => (await messages()) === before.messages, 5000);
		expect(await usageOf()).toEqual(before.usage);
		await nc.close();
	}, 60_000);
});
