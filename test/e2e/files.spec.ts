import { createHash, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../app/node.ts";
import { regionRuntimeOf } from "../../regions/runtime/region-runtime.ts";
import type { EmbeddedRegions } from "../harness/embedded-regions.ts";
import type { GatewayName, HttpAnswer } from "../harness/gateways.ts";
import { answerOf, gatewaySchemas, gatewayUrl, http } from "../harness/gateways.ts";
import { expectError } from "./expect-error.ts";
import { startFilesCluster } from "./files-cluster.ts";

/*
 * The caller's files over HTTP, through real gateways in front of the three embedded regions: what
 * a user sees of uploads, downloads, ranges, links and deletes, from its home's gateway and from
 * another region's, and of every refusal, which must leave the caller's files and quota as they were.
 */

const MAX_FILE = 256 * 1024;
const QUOTA = 400 * 1024;
Object.assign(process.env, { EDGEHOME_OSS_MAX_FILE_BYTES: String(MAX_FILE), EDGEHOME_OSS_QUOTA_BYTES: String(QUOTA), EDGEHOME_OSS_LINK_MAX_S: "3600" });

const nodes: Record<string, RegionNode> = {};
let cluster: EmbeddedRegions | undefined;
const PASSWORD = "files test 2026";
const LIMITS = { rateLimits: { ip: { max: 10_000, windowMs: 60_000 }, user: { max: 10_000, windowMs: 60_000 } } };

const base = (gateway: GatewayName = "api-www", region = "cn-east") => gatewayUrl(nodes[region]!.broker, gateway);
const www = (method: string, path: string, opts?: Parameters<typeof http>[3]) => http(base(), method, path, opts);
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** A PNG as far as its signature goes: what the type check reads. */
const PNG = Buffer.concat([
	Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]),
	Buffer.from("IHDR"),
	Buffer.alloc(17, 1),
	Buffer.from([0, 0, 0, 10]),
	Buffer.from("IDAT"),
	randomBytes(2000)
]);
/** A Windows program: a type no allow-list here holds. */
const EXE = Buffer.alloc(512);
EXE.write("MZ", 0);
EXE.writeUInt32LE(64, 0x3c);
EXE.write("PE\0\0", 64);

interface User {
	id: string;
	token: string;
}

let users = 0;
async function user(country?: string): Promise<User> {
	const username = `files${++users}${randomBytes(2).toString("hex")}`;
	const registered = await www("POST", "/api/v1/auth/register", { body: { username, password: PASSWORD, ...(country ? { country } : {}) } });
	expect(registered.status, registered.text).toBe(201);
	const tokens = await www("POST", "/api/v1/auth/login", { body: { login: username, password: PASSWORD } });
	return { id: registered.body.id, token: tokens.body.accessToken };
}

/** A raw-body upload. */
async function upload(who: User, bytes: Buffer, name: string, type?: string, gateway = base()): Promise<HttpAnswer> {
	const headers: Record<string, string> = { authorization: `Bearer ${who.token}`, "x-file-name": encodeURIComponent(name) };
	if (type) headers["content-type"] = type;
	return answerOf(await fetch(`${gateway}/api/v1/files`, { method: "POST", headers, body: bytes }));
}

async function download(path: string, token?: string, headers: Record<string, string> = {}, gateway = base()) {
	const res = await fetch(`${gateway}${path}`, { headers: { ...headers, ...(token ? { authorization: `Bearer ${token}` } : {}) } });
	return { status: res.status, headers: res.headers, bytes: Buffer.from(await res.arrayBuffer()) };
}

/** What the caller holds: its files' ids and the bytes in use. */
async function holdings(who: User): Promise<{ ids: string[]; used: number }> {
	const list = await www("GET", "/api/v1/files?limit=100", { token: who.token });
	const usage = await nodes["cn-east"]!.broker.call<{ usedBytes: number }, unknown>("sv-oss.usage", { userId: who.id });
	return { ids: list.body.items.map((f: { id: string }) => f.id), used: usage.usedBytes };
}

beforeAll(async () => {
	cluster = await startFilesCluster("files-e2e-", gatewaySchemas({ "api-www": LIMITS, "api-app": LIMITS, "api-cms": LIMITS, "api-wx": LIMITS }));
	Object.assign(nodes, cluster.nodes);
}, 60_000);

afterAll(async () => {
	await cluster?.stop();
});

describe("files over REST", () => {
	it("uploads a raw body and a multipart one, and downloads them as attachments that are not sniffed", async () => {
		const ann = await user();
		const up = await upload(ann, PNG, "../../etc/holiday.png", "image/png");
		expect(up.status, up.text).toBe(201);
		expect(up.body).toEqual({
			id: expect.any(String),
			name: "holiday.png",
			size: PNG.length,
			contentType: "image/png",
			sha256: sha(PNG),
			createdAt: expect.any(String)
		});
		expect(up.headers.get("location")).toBe(`/api/v1/files/${up.body.id}`);

		const form = new FormData();
		const text = Buffer.from("Grüße aus Köln\n".repeat(100));
		form.append("file", new Blob([text], { type: "text/plain" }), "notes.txt");
		const multi = answerOf(await fetch(`${base()}/api/v1/files`, { method: "POST", headers: { authorization: `Bearer ${ann.token}` }, body: form }));
		expect((await multi).status, (await multi).text).toBe(201);
		expect((await multi).body).toMatchObject({ name: "notes.txt", contentType: "text/plain", size: text.length });

		const got = await download(`/api/v1/files/${up.body.id}`, ann.token);
		expect(got.status).toBe(200);
		expect(got.bytes.equals(PNG)).toBe(true);
		expect(got.headers.get("content-type")).toBe("image/png");
		expect(got.headers.get("content-disposition")).toBe(`attachment; filename="holiday.png"; filename*=UTF-8''holiday.png`);
		expect(got.headers.get("x-content-type-options")).toBe("nosniff");
		expect(got.headers.get("etag")).toBe(`"${sha(PNG)}"`);

		const list = await www("GET", "/api/v1/files?limit=1", { token: ann.token });
		expect(list.body.items.map((f: { name: string }) => f.name)).toEqual(["notes.txt"]);
		const next = await www("GET", `/api/v1/files?limit=1&cursor=${encodeURIComponent(list.body.nextCursor)}`, { token: ann.token });
		expect({ names: next.body.items.map((f: { name: string }) => f.name), nextCursor: next.body.nextCursor }).toEqual({
			names: ["holiday.png"],
			nextCursor: null
		});
	});

	it("answers one byte range with 206, a range outside the file with 416, and a known ETag with 304", async () => {
		const bea = await user();
		const up = (await upload(bea, PNG, "range.png")).body;
		const path = `/api/v1/files/${up.id}`;
		const part = await download(path, bea.token, { range: "bytes=10-1009" });
		expect(part.status).toBe(206);
		expect(part.headers.get("content-range")).toBe(`bytes 10-1009/${PNG.length}`);
		expect(part.bytes.equals(PNG.subarray(10, 1010))).toBe(true);
		const tail = await download(path, bea.token, { range: "bytes=-5" });
		expect(tail.bytes.equals(PNG.subarray(-5))).toBe(true);
		const outside = await download(path, bea.token, { range: `bytes=${PNG.length}-` });
		expect(outside.status).toBe(416);
		expect(outside.headers.get("content-range")).toBe(`bytes */${PNG.length}`);
		expect((await download(path, bea.token, { "if-none-match": `"${up.sha256}"` })).status).toBe(304);
	});

	it("serves a user's files through another region's gateway, streamed from the home region", async () => {
		const cid = await user("SG");
		expect((await regionRuntimeOf(nodes["cn-east"]!.broker).directory.home(cid.id))?.region).toBe("ap-south");
		const data = Buffer.from("stored in ap-south, asked for in eu-central\n".repeat(3000));
		const up = await upload(cid, data, "far.txt", "text/plain", base("api-www", "eu-central"));
		expect(up.status, up.text).toBe(201);
		const got = await download(`/api/v1/files/${up.body.id}`, cid.token, {}, base("api-www", "cn-east"));
		expect(got.status).toBe(200);
		expect(got.bytes.equals(data)).toBe(true);
	});

	it("refuses too large, over quota, a refused or mismatched type, a bad name: each with its code, and keeps nothing", async () => {
		const dan = await user();
		expect((await upload(dan, Buffer.alloc(250 * 1024, 97), "big.txt")).status).toBe(201);
		const before = await holdings(dan);

		const refusals: [Buffer, string, string | undefined, number, string][] = [
			[Buffer.alloc(MAX_FILE + 1, 98), "too-big.txt", "text/plain", 413, "FILE_TOO_LARGE"],
			[Buffer.alloc(200 * 1024, 99), "over-quota.txt", undefined, 409, "QUOTA_EXCEEDED"],
			[EXE, "setup.exe", undefined, 415, "FILE_TYPE_NOT_ALLOWED"],
			[Buffer.from("just text"), "fake.png", "image/png", 415, "FILE_TYPE_MISMATCH"],
			[PNG, "photo\u202egnp.exe", "image/png", 400, "FILE_NAME_INVALID"],
			[PNG, "tab\there.png", "image/png", 400, "FILE_NAME_INVALID"]
		];
		for (const [bytes, name, type, status, code] of refusals) expectError(await upload(dan, bytes, name, type), status, code);
		// Announced too large: refused before a byte is read.
		const announced = answerOf(
			await fetch(`${base()}/api/v1/files`, {
				method: "POST",
				headers: { authorization: `Bearer ${dan.token}`, "x-file-name": "a.txt", "content-type": "text/plain" },
				body: Buffer.alloc(MAX_FILE + 10, 97)
			})
		);
		expectError(await announced, 413, "FILE_TOO_LARGE");
		expect(await holdings(dan)).toEqual(before);
	});

	it("keeps names safe: the path dropped, long names cut with their extension kept", async () => {
		const eve = await user();
		const long = `${"ä".repeat(300)}.txt`;
		const up = await upload(eve, Buffer.from("hi"), `C:\\Users\\eve\\${long}`);
		expect(up.status).toBe(201);
		expect([...up.body.name].length).toBe(200);
		expect(up.body.name.endsWith("ä.txt")).toBe(true);
		const got = await download(`/api/v1/files/${up.body.id}`, eve.token);
		expect(got.headers.get("content-disposition")).toMatch(/^attachment; filename="_+\.txt"; filename\*=UTF-8''(%C3%A4)+\.txt$/);
	});

	it("hides another user's file: 404 to read, delete or share it, and the file stays", async () => {
		const [fay, gus] = [await user(), await user()];
		const up = (await upload(fay, PNG, "mine.png")).body;
		expectError(await www("GET", `/api/v1/files/${up.id}`, { token: gus.token }), 404, "FILE_NOT_FOUND");
		expectError(await www("DELETE", `/api/v1/files/${up.id}`, { token: gus.token }), 404, "FILE_NOT_FOUND");
		expectError(await www("POST", `/api/v1/files/${up.id}/links`, { token: gus.token, body: { expiresIn: 60 } }), 404, "FILE_NOT_FOUND");
		expect((await holdings(fay)).ids).toEqual([up.id]);
	});

	it("opens a signed link at any region's gateway without a token, until it expires; a tampered one is refused", async () => {
		const hal = await user();
		const up = (await upload(hal, PNG, "shared.png")).body;
		const link = await www("POST", `/api/v1/files/${up.id}/links`, { token: hal.token, body: { expiresIn: 600 } });
		expect(link.status, link.text).toBe(201);
		for (const region of ["cn-east", "ap-south", "eu-central"]) {
			const got = await download(link.body.url, undefined, {}, base("api-app", region));
			expect({ region, status: got.status, same: got.bytes.equals(PNG) }).toEqual({ region, status: 200, same: true });
		}
		expect((await download(link.body.url, undefined, { range: "bytes=0-7" })).bytes.equals(PNG.subarray(0, 8))).toBe(true);

		const token: string = link.body.url.split("/").pop();
		const flipped = token.slice(0, -1) + (token.endsWith("A") ? "B" : "A");
		const later = token.replace(/\.(\d+)\./, (_m, s: string) => `.${Number(s) + 1000}.`);
		for (const bad of [flipped, later, "not-a-link"]) expectError(await www("GET", `/api/v1/file-links/${bad}`), 403, "LINK_INVALID");
		// Longer than EDGEHOME_OSS_LINK_MAX_S: the link lives that long at most.
		const capped = await www("POST", `/api/v1/files/${up.id}/links`, { token: hal.token, body: { expiresIn: 7200 } });
		expect(Date.parse(capped.body.expiresAt)).toBeLessThanOrEqual(Date.now() + 3600_000);

		const brief = await www("POST", `/api/v1/files/${up.id}/links`, { token: hal.token, body: { expiresIn: 1 } });
		await new Promise(r => setTimeout(r, 2100));
		expectError(await www("GET", brief.body.url), 403, "LINK_EXPIRED");

		// Deleted: the link opens nothing any more.
		expect((await www("DELETE", `/api/v1/files/${up.id}`, { token: hal.token })).status).toBe(204);
		expectError(await www("GET", link.body.url), 403, "LINK_INVALID");
		expect(await holdings(hal)).toEqual({ ids: [], used: 0 });
	});

	it("shows support a user's files and quota use on api-cms", async () => {
		const [ida, staff] = [await user(), await user()];
		await nodes["cn-east"]!.broker.call("auth-rbac.grant", { userId: staff.id, role: "support" });
		const staffToken = (
			await http(base("api-cms"), "POST", "/api/v1/auth/login", {
				body: { login: (await www("GET", "/api/v1/me", { token: staff.token })).body.username, password: PASSWORD }
			})
		).body.accessToken;
		await upload(ida, PNG, "a.png");
		const seen = await http(base("api-cms"), "GET", `/api/v1/admin/users/${ida.id}/files`, { token: staffToken });
		expect(seen.status, seen.text).toBe(200);
		expect(seen.body).toMatchObject({ usage: { userId: ida.id, files: 1, usedBytes: PNG.length, quotaBytes: QUOTA }, nextCursor: null });
		const cmsToken = (
			await http(base("api-cms"), "POST", "/api/v1/auth/login", {
				body: { login: (await www("GET", "/api/v1/me", { token: ida.token })).body.username, password: PASSWORD }
			})
		).body.accessToken;
		expectError(await http(base("api-cms"), "GET", `/api/v1/admin/users/${ida.id}/files`, { token: cmsToken }), 403, "FORBIDDEN");
	});
});
