import { createHash, randomBytes } from "node:crypto";
import type { Readable } from "node:stream";
import { pipeline, Transform } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../app/node.ts";
import { regionRuntimeOf } from "../../regions/runtime/region-runtime.ts";
import type { DownloadSession } from "../../services/sv-oss/download-session.ts";
import { GATEWAY_HELD } from "../../services/sv-oss/paced-calls.ts";
import type { Sessions } from "../../services/sv-oss/pacing.ts";
import { PART_BYTES, WINDOW } from "../../services/sv-oss/pacing.ts";
import type { BlobStore } from "../../services/sv-oss/store.ts";
import type { UploadSession } from "../../services/sv-oss/upload-session.ts";
import type { EmbeddedRegions } from "../harness/embedded-regions.ts";
import { answerOf, gatewaySchemas, gatewayUrl, http } from "../harness/gateways.ts";
import { failureOf, within } from "../harness/waiting.ts";
import { textOf } from "../unit/services/sv-oss/store-contract.ts";
import { startFilesCluster } from "./files-cluster.ts";

/*
 * Files through a gateway of another region than the owner's home: the bytes go part by part
 * (services/sv-oss/pacing.ts), so neither end gathers a file a slow other side cannot take. A 20 MB
 * upload into a store slowed to ~10 MB/s, and a 20 MB download to a client reading ~8 MB/s: the
 * bytes each end holds, counted as they come and go, stay within a few parts. A transfer broken
 * off (the client gone, the gateway silent) leaves no file and nothing counted.
 */

const FILE_BYTES = 20 * 1024 * 1024;
const IDLE_MS = 1500;
Object.assign(process.env, { EDGEHOME_OSS_MAX_FILE_BYTES: String(25 * 1024 * 1024), EDGEHOME_OSS_TRANSFER_IDLE_MS: String(IDLE_MS) });

/** What an upload at the home may hold: the body's buffer (both sides of UPLOAD_HIGH_WATER) and a window of parts. */
const HOME_BOUND = 2 * 1024 * 1024;
/** What a gateway may hold: a window of parts. */
const GATEWAY_BOUND = WINDOW * PART_BYTES;

let cluster: EmbeddedRegions | undefined;
const node = (region: string): RegionNode => cluster!.nodes[region]!;
const base = (region: string) => gatewayUrl(node(region).broker, "api-www");
const LIMITS = { rateLimits: { ip: { max: 10_000, windowMs: 60_000 }, user: { max: 10_000, windowMs: 60_000 } } };

interface OssService {
	blobs: BlobStore;
	uploads: Sessions<UploadSession>;
	downloads: Sessions<DownloadSession>;
}
const home = () => node("ap-south").broker.getLocalService("sv-oss") as unknown as OssService;
const homeHeld = () =>
	home()
		.uploads.sessions()
		.reduce((n, s) => n + s.held(), 0);

/** Passes bytes on at `bytesPerSecond`. */
function throttle(bytesPerSecond: number): Transform {
	return new Transform({
		transform(chunk: Buffer, _enc, done) {
			setTimeout(() => done(null, chunk), (chunk.length / bytesPerSecond) * 1000);
		}
	});
}

/** The highest of `sample()` while `work` runs, sampled every 5 ms. */
async function peakWhile<T>(sample: () => number, work: Promise<T>): Promise<{ result: T; peak: number }> {
	let peak = sample();
	const timer = setInterval(() => {
		peak = Math.max(peak, sample());
	}, 5);
	try {
		return { result: await work, peak };
	} finally {
		clearInterval(timer);
	}
}

const PASSWORD = "pacing test 2026";
async function userInSingapore(): Promise<{ id: string; token: string }> {
	const username = `pace${randomBytes(3).toString("hex")}`;
	const registered = await http(base("cn-east"), "POST", "/api/v1/auth/register", { body: { username, password: PASSWORD, country: "SG" } });
	expect(registered.status, registered.text).toBe(201);
	const tokens = await http(base("cn-east"), "POST", "/api/v1/auth/login", { body: { login: username, password: PASSWORD } });
	return { id: registered.body.id, token: tokens.body.accessToken };
}

const usage = (userId: string) =>
	node("ap-south")
		.broker.call<{ files: number; usedBytes: number }, unknown>("sv-oss.usage", { userId })
		.then(u => ({ files: u.files, used: u.usedBytes }));

async function uploadThroughEurope(who: { token: string }, body: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>, signal?: AbortSignal) {
	return answerOf(
		await fetch(`${base("eu-central")}/api/v1/files`, {
			method: "POST",
			headers: { authorization: `Bearer ${who.token}`, "content-type": "text/plain", "x-file-name": "big.txt" },
			body,
			duplex: "half",
			signal
		} as RequestInit)
	);
}

beforeAll(async () => {
	cluster = await startFilesCluster(`files-pacing-${randomBytes(2).toString("hex")}-`, gatewaySchemas({ "api-www": LIMITS }));
}, 60_000);

afterAll(async () => {
	await cluster?.stop();
});

describe("files paced between a gateway and another region's home", () => {
	let owner: { id: string; token: string };
	let stored: { id: string; sha256: string };
	const file = textOf(FILE_BYTES, "paced");

	beforeAll(async () => {
		owner = await userInSingapore();
		expect((await regionRuntimeOf(node("cn-east").broker).directory.home(owner.id))?.region).toBe("ap-south");
	});

	it("uploads 20 MB into a home storing at ~10 MB/s, each end holding a few parts at most", async () => {
		const blobs = home().blobs;
		const put = blobs.put;
		blobs.put = (key: string, body: Readable) =>
			put.call(
				blobs,
				key,
				pipeline(body, throttle(10 * 1024 * 1024), () => undefined)
			);
		GATEWAY_HELD.upload.resetPeak();
		const started = Date.now();
		try {
			const { result: up, peak } = await peakWhile(homeHeld, uploadThroughEurope(owner, file.stream()));
			expect(up.status, up.text).toBe(201);
			expect(up.body).toMatchObject({ size: FILE_BYTES, sha256: file.sha256 });
			stored = up.body;
			// The store set the pace: the client could have sent it all in a fraction of this.
			expect(Date.now() - started).toBeGreaterThan(1500);
			expect({ home: peak <= HOME_BOUND, gateway: GATEWAY_HELD.upload.peak <= GATEWAY_BOUND }).toEqual({ home: true, gateway: true });
			console.log(`upload: home held at most ${(peak / 1048576).toFixed(2)} MB, gateway ${(GATEWAY_HELD.upload.peak / 1048576).toFixed(2)} MB`);
		} finally {
			blobs.put = put;
		}
		expect(home().uploads.size).toBe(0);
		expect(await usage(owner.id)).toEqual({ files: 1, used: FILE_BYTES });
	}, 60_000);

	it("downloads 20 MB to a client reading ~8 MB/s, the gateway holding a few parts at most", async () => {
		GATEWAY_HELD.download.resetPeak();
		const res = await fetch(`${base("eu-central")}/api/v1/files/${stored.id}`, { headers: { authorization: `Bearer ${owner.token}` } });
		expect(res.status).toBe(200);
		const hash = createHash("sha256");
		let got = 0;
		for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
			hash.update(chunk);
			got += chunk.length;
			await new Promise(r => setTimeout(r, chunk.length / (8 * 1024)));
		}
		expect({ got, sha256: hash.digest("hex") }).toEqual({ got: FILE_BYTES, sha256: stored.sha256 });
		expect(GATEWAY_HELD.download.peak).toBeLessThanOrEqual(GATEWAY_BOUND);
		console.log(`download: gateway held at most ${(GATEWAY_HELD.download.peak / 1048576).toFixed(2)} MB`);
		expect(home().downloads.size).toBe(0);
	}, 60_000);

	it("answers a range across parts with 206 and a known ETag with 304", async () => {
		const path = `${base("eu-central")}/api/v1/files/${stored.id}`;
		const start = PART_BYTES - 10;
		const end = 3 * PART_BYTES + 9;
		const part = await fetch(path, { headers: { authorization: `Bearer ${owner.token}`, range: `bytes=${start}-${end}` } });
		const bytes = Buffer.from(await part.arrayBuffer());
		expect({ status: part.status, range: part.headers.get("content-range"), length: bytes.length }).toEqual({
			status: 206,
			range: `bytes ${start}-${end}/${FILE_BYTES}`,
			length: end - start + 1
		});
		expect(bytes.equals(file.at(start, end))).toBe(true);
		const cached = await fetch(path, { headers: { authorization: `Bearer ${owner.token}`, "if-none-match": `"${stored.sha256}"` } });
		expect(cached.status).toBe(304);
	});

	it("lets the home go of a download whose client left half way", async () => {
		const controller = new AbortController();
		const res = await fetch(`${base("eu-central")}/api/v1/files/${stored.id}`, {
			headers: { authorization: `Bearer ${owner.token}` },
			signal: controller.signal
		});
		const reader = res.body!.getReader();
		let got = 0;
		while (got < 2 * 1024 * 1024) got += (await reader.read()).value!.length;
		controller.abort();
		// Told by the gateway at once, well before the session would expire idle.
		await within(() => home().downloads.size === 0, IDLE_MS - 500);
	});

	it("keeps nothing of an upload whose client left half way", async () => {
		const before = await usage(owner.id);
		const controller = new AbortController();
		let sent = 0;
		const chunk = Buffer.alloc(64 * 1024, 97);
		const endless = new ReadableStream<Uint8Array>({
			async pull(c) {
				if ((sent += chunk.length) > 3 * 1024 * 1024) return new Promise(() => controller.abort());
				c.enqueue(chunk);
			}
		});
		await expect(uploadThroughEurope(owner, endless, controller.signal)).rejects.toThrow();
		await within(() => home().uploads.size === 0, IDLE_MS * 3);
		expect(await usage(owner.id)).toEqual(before);
	});
});

describe("the part actions on the bus", () => {
	let owner: { id: string };
	const europe = () => regionRuntimeOf(node("eu-central").broker);
	const at = (nodeID: string) => ({ nodeID, retries: 0 });

	beforeAll(async () => {
		owner = await userInSingapore();
	});

	it("drops an upload whose gateway went silent: its parts are refused, nothing is kept or counted", async () => {
		const begun = await europe().call<{ uploadId: string; nodeID: string }>("ap-south", "sv-oss.uploadBegin", {
			userId: owner.id,
			name: "silent.txt",
			contentType: "text/plain"
		});
		const part = (seq: number, data = Buffer.alloc(1000, 97).toString("base64")) =>
			europe().call("ap-south", "sv-oss.uploadPart", { uploadId: begun.uploadId, seq, data }, at(begun.nodeID));
		expect(await part(0)).toEqual({ accepted: 0 });
		expect(home().uploads.size).toBe(1);
		await new Promise(r => setTimeout(r, IDLE_MS + 500));
		expect(home().uploads.size).toBe(0);
		expect(await failureOf(part(1))).toMatchObject({ type: "TRANSFER_SESSION_NOT_FOUND", code: 404 });
		expect(await usage(owner.id)).toEqual({ files: 0, used: 0 });
	});

	it("refuses parts out of the window, twice, malformed or of no transfer, and an end that does not add up, each with its code", async () => {
		const begun = await europe().call<{ uploadId: string; nodeID: string }>("ap-south", "sv-oss.uploadBegin", {
			userId: owner.id,
			name: "parts.txt",
			contentType: "text/plain"
		});
		const call = (action: string, params: object) => failureOf(europe().call("ap-south", `sv-oss.${action}`, params, at(begun.nodeID)));
		const data = Buffer.from("some text").toString("base64");
		const { uploadId } = begun;
		expect(await call("uploadPart", { uploadId, seq: WINDOW, data })).toMatchObject({ type: "TRANSFER_PART_INVALID", code: 400 });
		expect(await call("uploadPart", { uploadId, seq: 1, data })).toMatchObject({ type: "(succeeded)" });
		expect(await call("uploadPart", { uploadId, seq: 1, data })).toMatchObject({ type: "TRANSFER_PART_INVALID" });
		expect(await call("uploadPart", { uploadId, seq: 0, data: "not base64!" })).toMatchObject({ type: "VALIDATION_ERROR", code: 422 });
		expect(await call("uploadPart", { uploadId, seq: 0, data: "A".repeat(PART_BYTES * 2) })).toMatchObject({ type: "VALIDATION_ERROR" });
		expect(await call("uploadPart", { uploadId, seq: -1, data })).toMatchObject({ type: "VALIDATION_ERROR" });
		expect(await call("uploadPart", { uploadId, seq: 0, data, extra: 1 })).toMatchObject({ type: "VALIDATION_ERROR" });
		expect(await call("uploadPart", { uploadId: "3b241101-e2bb-4255-8caf-4136c566a962", seq: 0, data })).toMatchObject({
			type: "TRANSFER_SESSION_NOT_FOUND"
		});
		expect(await call("uploadEnd", { uploadId, parts: 1 })).toMatchObject({ type: "TRANSFER_PART_INVALID" });
		expect(await call("uploadPart", { uploadId, seq: 0, data })).toMatchObject({ type: "(succeeded)" });
		expect(await call("uploadAbort", { uploadId })).toMatchObject({ type: "(succeeded)" });
		expect(await call("uploadEnd", { uploadId, parts: 2 })).toMatchObject({ type: "TRANSFER_SESSION_NOT_FOUND" });
		expect(await call("downloadPart", { downloadId: uploadId, seq: 0 })).toMatchObject({ type: "TRANSFER_SESSION_NOT_FOUND" });
		expect(await usage(owner.id)).toEqual({ files: 0, used: 0 });
	});

	it("refuses at begin what upload refuses before a byte is read", async () => {
		const err = await failureOf(
			europe().call("ap-south", "sv-oss.uploadBegin", { userId: owner.id, name: "huge.txt", length: 26 * 1024 * 1024, contentType: "text/plain" })
		);
		expect(err).toMatchObject({ type: "FILE_TOO_LARGE", code: 413 });
		expect(home().uploads.size).toBe(0);
	});
});
