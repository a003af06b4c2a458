import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../app/node.ts";
import type { EmbeddedRegions } from "../harness/embedded-regions.ts";
import { everyFeedHeard, REGION_IDS, startEmbeddedRegions } from "../harness/embedded-regions.ts";
import type { EventStreamClient } from "../harness/event-stream.ts";
import { openEventStream } from "../harness/event-stream.ts";
import type { GatewayName, HttpAnswer } from "../harness/gateways.ts";
import { GATEWAYS, gatewaySchemas, gatewayUrl, http } from "../harness/gateways.ts";
import { within } from "../harness/waiting.ts";
import { expectError, SECURITY_HEADERS } from "./expect-error.ts";

/*
 * The caller's notices over HTTP, through real gateways in front of the three embedded regions:
 * the inbox and preferences routes and their refusals, and the live stream (Server-Sent Events)
 * read as a browser's EventSource reads it: pushed across regions, resumed after a dropped
 * connection with nothing missed and nothing twice, limited per user, kept alive, ended on stop.
 */

const nodes: Record<string, RegionNode> = {};
let cluster: EmbeddedRegions | undefined;
const PASSWORD = "notice test 2026";
const HEARTBEAT_MS = 300;
/** Shorter than any stream here lives: a long-lived answer must outlast it (it bounds a request's arrival only). */
const REQUEST_TIMEOUT_MS = 1000;
const SETTINGS = {
	rateLimits: { ip: { max: 10_000, windowMs: 60_000 }, user: { max: 10_000, windowMs: 60_000 } },
	requestTimeout: REQUEST_TIMEOUT_MS,
	streams: { perUser: 5, total: 1000, heartbeatMs: HEARTBEAT_MS, retryMs: 1500, maxBufferedBytes: 1024 * 1024 }
};

const via =
	(gateway: GatewayName, region = "cn-east") =>
	(method: string, path: string, opts?: Parameters<typeof http>[3]) =>
		http(gatewayUrl(nodes[region]!.broker, gateway), method, path, opts);
const www = via("api-www");

interface User {
	id: string;
	username: string;
	token: string;
}

/**
 * A registered user with a www token, logged in once in every region (one after the other: a login
 * ends the user's session of that client type). A region's first login of a user from an address
 * brings a security notice (auth-jwt, through the durable channel): those are awaited and deleted,
 * so each inbox here starts empty and gets nothing this file did not send.
 */
async function user(username: string, country?: string): Promise<User> {
	const registered = await www("POST", "/api/v1/auth/register", { body: { username, password: PASSWORD, ...(country ? { country } : {}) } });
	expect(registered.status, registered.text).toBe(201);
	let token = "";
	for (const region of REGION_IDS) token = await tokenFor("api-www", region, username);
	const who = { id: registered.body.id, username, token };
	let logins: Notice[] = [];
	await within(async () => (logins = (await as(who, "GET", "/api/v1/me/notices")).body.items).length === REGION_IDS.length, 10_000);
	for (const n of logins)
		expect({ category: n.category, deleted: (await as(who, "DELETE", `/api/v1/me/notices/${n.id}`)).status }).toEqual({ category: "security", deleted: 204 });
	return who;
}

function as(who: User, method: string, path: string, body?: unknown): Promise<HttpAnswer> {
	return www(method, path, { token: who.token, body });
}

interface Notice {
	id: string;
	seq: number;
	category: string;
	title: string;
	text: string;
	html: string;
	read: boolean;
	createdAt: string;
}

/** A notice as a producer sends it (through sv-notice, from cn-east: home-routed to the user's region). */
async function notify(who: User, over: Record<string, unknown> = {}): Promise<Notice> {
	const sent = await nodes["cn-east"]!.broker.call<{ notice: Notice }, unknown>("sv-notice.send", {
		userId: who.id,
		category: "wallet",
		template: "transfer-received",
		data: { amount: "1250", currency: "EUR", from: "bob" },
		idempotencyKey: randomUUID(),
		...over
	});
	return sent.notice;
}

const ALL_ON = { security: true, wallet: true, account: true, announcement: true };
const DEFAULT_PREFERENCES = { locale: "en", channels: { inbox: ALL_ON, email: ALL_ON, webhook: ALL_ON } };

function stream(who: User, opts: { gateway?: GatewayName; region?: string; lastEventId?: string; token?: string } = {}) {
	const base = gatewayUrl(nodes[opts.region ?? "cn-east"]!.broker, opts.gateway ?? "api-www");
	return openEventStream(base, "/api/v1/me/notices/stream", { token: opts.token ?? who.token, lastEventId: opts.lastEventId });
}

/** A stream that must open. */
async function connected(who: User, opts: Parameters<typeof stream>[1] = {}): Promise<EventStreamClient> {
	const { stream: s, refused } = await stream(who, opts);
	expect(refused?.text ?? "", "the stream was refused").toBe("");
	return s!;
}

const noticesOf = (s: EventStreamClient) => s.named("notice").map(e => ({ id: Number(e.lastEventId), notice: JSON.parse(e.data) as Notice }));
const unreadOf = (s: EventStreamClient) => s.named("unread-count").map(e => JSON.parse(e.data).unread as number);
const lastUnread = (s: EventStreamClient) => unreadOf(s).at(-1);

let hans: User;
let liwei: User;
let ann: User;
const open: EventStreamClient[] = [];

beforeAll(async () => {
	cluster = await startEmbeddedRegions({
		namespacePrefix: "notices-e2e-",
		services: ["sv-region", "sv-user", "auth-jwt", "auth-rbac", "sv-notice"],
		schemas: gatewaySchemas(Object.fromEntries(Object.keys(GATEWAYS).map(name => [name, SETTINGS])))
	});
	Object.assign(nodes, cluster.nodes);
	await everyFeedHeard(cluster, 10_000);
	[hans, liwei, ann] = await Promise.all([user("hans", "DE"), user("liwei", "CN"), user("ann", "SG")]);
}, 60_000);

afterAll(async () => {
	for (const s of open) s.close();
	await cluster?.stop();
});

describe("notices: the inbox over REST", () => {
	let first: Notice;
	let second: Notice;
	let third: Notice;

	it("lists the caller's notices newest first, a page at a time, and counts the unread ones", async () => {
		expect(await as(hans, "GET", "/api/v1/me/notices")).toMatchObject({ status: 200, body: { items: [], nextCursor: null } });
		expect(await as(hans, "GET", "/api/v1/me/notices/unread-count")).toMatchObject({ status: 200, body: { unread: 0 } });
		first = await notify(hans);
		second = await notify(hans, { data: { amount: "5", currency: "JPY", from: "<b>eve</b>" } });
		third = await notify(hans, { category: "account", template: "move-completed", data: { region: "eu-central" } });
		expect([second.seq, third.seq]).toEqual([first.seq + 1, first.seq + 2]);

		const all = await as(hans, "GET", "/api/v1/me/notices");
		expect(all.status, all.text).toBe(200);
		expect(all.body).toEqual({ items: [third, second, first], nextCursor: null });
		expect(second).toMatchObject({ title: "You received 5 JPY", html: "<p><b>&lt;b&gt;eve&lt;/b&gt;</b> sent you <b>5 JPY</b>.</p>", read: false });

		const page = await as(hans, "GET", "/api/v1/me/notices?limit=2");
		expect(page.body).toEqual({ items: [third, second], nextCursor: second.seq });
		expect((await as(hans, "GET", `/api/v1/me/notices?limit=2&cursor=${second.seq}`)).body).toEqual({ items: [first], nextCursor: null });
		expect((await as(hans, "GET", "/api/v1/me/notices/unread-count")).body).toEqual({ unread: 3 });
		// Another user's inbox is theirs.
		expect((await as(liwei, "GET", "/api/v1/me/notices")).body).toEqual({ items: [], nextCursor: null });
	});

	it("marks one read, then the rest, each answering the unread count", async () => {
		expect(await as(hans, "POST", `/api/v1/me/notices/${second.id}/read`)).toMatchObject({ status: 200, body: { unread: 2 } });
		expect(await as(hans, "POST", `/api/v1/me/notices/${second.id}/read`)).toMatchObject({ status: 200, body: { unread: 2 } });
		const unread = await as(hans, "GET", "/api/v1/me/notices?unread=true");
		expect(unread.body.items.map((n: Notice) => n.id)).toEqual([third.id, first.id]);
		expect((await as(hans, "GET", "/api/v1/me/notices?unread=false")).body.items).toHaveLength(3);

		expect(await as(hans, "POST", "/api/v1/me/notices/read-all")).toMatchObject({ status: 200, body: { marked: 2, unread: 0 } });
		expect(await as(hans, "POST", "/api/v1/me/notices/read-all")).toMatchObject({ status: 200, body: { marked: 0, unread: 0 } });
		expect((await as(hans, "GET", "/api/v1/me/notices")).body.items.map((n: Notice) => n.read)).toEqual([true, true, true]);
	});

	it("deletes one: 204 with no body, gone from the list, then not found", async () => {
		const deleted = await as(hans, "DELETE", `/api/v1/me/notices/${first.id}`);
		expect({ status: deleted.status, text: deleted.text }).toEqual({ status: 204, text: "" });
		expect((await as(hans, "GET", "/api/v1/me/notices")).body.items.map((n: Notice) => n.id)).toEqual([third.id, second.id]);
		expectError(await as(hans, "DELETE", `/api/v1/me/notices/${first.id}`), 404, "NOTICE_NOT_FOUND");
		expectError(await as(hans, "POST", `/api/v1/me/notices/${first.id}/read`), 404, "NOTICE_NOT_FOUND");
	});

	it("answers 404 NOTICE_NOT_FOUND for another user's notice, and changes nothing of it", async () => {
		const fresh = await notify(hans);
		expectError(await as(liwei, "POST", `/api/v1/me/notices/${fresh.id}/read`), 404, "NOTICE_NOT_FOUND");
		expectError(await as(liwei, "DELETE", `/api/v1/me/notices/${fresh.id}`), 404, "NOTICE_NOT_FOUND");
		expectError(await as(liwei, "POST", `/api/v1/me/notices/${randomUUID()}/read`), 404, "NOTICE_NOT_FOUND");
		expect((await as(liwei, "POST", "/api/v1/me/notices/read-all")).body).toEqual({ marked: 0, unread: 0 });
		expect((await as(hans, "GET", "/api/v1/me/notices?limit=1")).body.items).toEqual([fresh]);
		expect((await as(hans, "GET", "/api/v1/me/notices/unread-count")).body).toEqual({ unread: 1 });
	});

	it("refuses malformed requests with 400 and unauthenticated ones with 401, nothing internal in either", async () => {
		for (const query of ["limit=101", "limit=0", "limit=x", "cursor=0", "cursor=-3", "unread=maybe", "extra=1"])
			expectError(await as(hans, "GET", `/api/v1/me/notices?${query}`), 400, "VALIDATION_FAILED");
		expectError(await as(hans, "GET", "/api/v1/me/notices/unread-count?limit=1"), 400, "VALIDATION_FAILED");
		for (const id of ["not-an-id", "x".repeat(36), `${randomUUID()}0`])
			expectError(await as(hans, "POST", `/api/v1/me/notices/${id}/read`), 400, "VALIDATION_FAILED");
		expectError(await as(hans, "DELETE", "/api/v1/me/notices/NOT-AN-ID"), 400, "VALIDATION_FAILED");
		expectError(await as(hans, "POST", "/api/v1/me/notices/read-all", { userId: liwei.id }), 400, "VALIDATION_FAILED");
		for (const [method, path] of [
			["GET", "/api/v1/me/notices"],
			["GET", "/api/v1/me/notices/unread-count"],
			["POST", "/api/v1/me/notices/read-all"],
			["POST", `/api/v1/me/notices/${randomUUID()}/read`],
			["DELETE", `/api/v1/me/notices/${randomUUID()}`],
			["GET", "/api/v1/me/notice-preferences"],
			["PUT", "/api/v1/me/notice-preferences"],
			["GET", "/api/v1/me/notices/stream"]
		])
			expectError(await www(method!, path!), 401, "UNAUTHORIZED");
	});

	it("serves the caller's inbox on every gateway in every region, to that gateway's tokens", async () => {
		for (const region of REGION_IDS)
			for (const gateway of Object.keys(GATEWAYS) as GatewayName[]) {
				// A www login would end the session of hans.token, which the other tests use.
				const token = gateway === "api-www" ? hans.token : await tokenFor(gateway, region, "hans");
				const res = await via(gateway, region)("GET", "/api/v1/me/notices/unread-count", { token });
				expect({ region, gateway, status: res.status, body: res.body }).toEqual({ region, gateway, status: 200, body: { unread: 1 } });
			}
	});
});

describe("notices: preferences over REST", () => {
	it("starts with everything on in English, and keeps what is put", async () => {
		expect(await as(liwei, "GET", "/api/v1/me/notice-preferences")).toMatchObject({ status: 200, body: DEFAULT_PREFERENCES });
		const chosen = {
			locale: "zh",
			channels: { inbox: { ...ALL_ON, announcement: false }, email: { ...ALL_ON, wallet: false, account: false }, webhook: ALL_ON }
		};
		const put = await as(liwei, "PUT", "/api/v1/me/notice-preferences", chosen);
		expect({ status: put.status, body: put.body }).toEqual({ status: 200, body: chosen });
		expect((await as(liwei, "GET", "/api/v1/me/notice-preferences")).body).toEqual(chosen);
		// The locale is the user's: the next notice is written in it.
		expect((await notify(liwei)).title).toBe("您收到 12.50 EUR");
		expect((await as(hans, "GET", "/api/v1/me/notice-preferences")).body).toEqual(DEFAULT_PREFERENCES);
	});

	it("refuses turning security notices off in the inbox (422) and malformed preferences (400), changing nothing", async () => {
		const before = (await as(liwei, "GET", "/api/v1/me/notice-preferences")).body;
		const good = { locale: "en", channels: { inbox: ALL_ON, email: ALL_ON, webhook: ALL_ON } };
		expectError(
			await as(liwei, "PUT", "/api/v1/me/notice-preferences", { ...good, channels: { ...good.channels, inbox: { ...ALL_ON, security: false } } }),
			422,
			"SECURITY_NOTICES_REQUIRED"
		);
		const malformed = [
			{ ...good, locale: "fr" },
			{ channels: good.channels },
			{ locale: "en" },
			{ ...good, extra: 1 },
			{ ...good, channels: { inbox: ALL_ON, email: ALL_ON } },
			{ ...good, channels: { ...good.channels, sms: ALL_ON } },
			{ ...good, channels: { ...good.channels, email: { ...ALL_ON, wallet: "no" } } },
			{ ...good, channels: { ...good.channels, email: { security: true, wallet: true, account: true } } },
			{ ...good, channels: { ...good.channels, email: { ...ALL_ON, marketing: false } } }
		];
		for (const body of malformed) expectError(await as(liwei, "PUT", "/api/v1/me/notice-preferences", body), 400, "VALIDATION_FAILED");
		expectError(await as(liwei, "GET", "/api/v1/me/notice-preferences?locale=en"), 400, "VALIDATION_FAILED");
		expect((await as(liwei, "GET", "/api/v1/me/notice-preferences")).body).toEqual(before);
	});
});

describe("notices: the live stream", () => {
	it("answers an event stream: its headers, the retry delay, the unread count first, and no replay of older notices", async () => {
		const s = await connected(hans);
		open.push(s);
		await s.until(() => s.named("unread-count").length === 1, 2000, "the unread count");
		expect(s.status).toBe(200);
		expect(s.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
		expect(s.headers.get("cache-control")).toBe("no-store");
		expect(s.headers.get("x-request-id")).toEqual(expect.any(String));
		expect(s.headers.has("etag")).toBe(false);
		expect(s.headers.has("content-length")).toBe(false);
		for (const name of SECURITY_HEADERS) expect({ name, present: s.headers.has(name) }).toEqual({ name, present: true });
		expect(s.retry).toBe(SETTINGS.streams.retryMs);
		expect(unreadOf(s)).toEqual([1]);
		expect(noticesOf(s)).toEqual([]);
		s.close();
	});

	it("pushes a notice to a client in cn-east for a user homed in eu-central within 1 s of the send", async () => {
		const s = await connected(hans);
		open.push(s);
		await s.until(() => unreadOf(s).length === 1, 2000, "the unread count");
		const latencies: number[] = [];
		for (let i = 0; i < 5; i++) {
			const started = Date.now();
			const sent = await notify(hans, { data: { amount: String(100 + i), currency: "EUR", from: "latency" } });
			await s.until(() => noticesOf(s).some(n => n.notice.id === sent.id), 2000, `notice ${sent.seq}`);
			const event = s.named("notice").find(e => JSON.parse(e.data).id === sent.id)!;
			latencies.push(event.at - started);
			expect(JSON.parse(event.data)).toEqual(sent);
			expect(event).toMatchObject({ lastEventId: String(sent.seq), hasId: true });
		}
		console.log(`notice push cn-east client ← eu-central home: send→event ${latencies.join(", ")} ms (max ${Math.max(...latencies)} ms)`);
		for (const ms of latencies) expect(ms).toBeLessThan(1000);
		await s.until(() => lastUnread(s) === 6, 2000, "the unread count after the sends");
		s.close();
	});

	it("sends the unread count again after a notice is read and after read-all", async () => {
		const s = await connected(hans, { gateway: "api-app", region: "ap-south", token: await tokenFor("api-app", "ap-south", "hans") });
		open.push(s);
		await s.until(() => unreadOf(s).length === 1, 2000, "the unread count");
		const start = lastUnread(s)!;
		const latest = (await as(hans, "GET", "/api/v1/me/notices?unread=true&limit=1")).body.items[0];
		expect((await as(hans, "POST", `/api/v1/me/notices/${latest.id}/read`)).body).toEqual({ unread: start - 1 });
		await s.until(() => lastUnread(s) === start - 1, 2000, "the count after one read");
		expect((await as(hans, "POST", "/api/v1/me/notices/read-all")).status).toBe(200);
		await s.until(() => lastUnread(s) === 0, 2000, "the count after read-all");
		expect(unreadOf(s)).toEqual([start, start - 1, 0]);
		// An event without an id keeps the stream's last event id: a resume still starts after the last notice.
		expect(s.named("unread-count").every(e => !e.hasId)).toBe(true);
		s.close();
	});

	it("resumes after a dropped connection with exactly the missed notices, in order, then the live ones", async () => {
		const first = await connected(ann);
		await first.until(() => unreadOf(first).length === 1, 2000, "the unread count");
		const before = [await notify(ann), await notify(ann)];
		await first.until(() => noticesOf(first).length === 2, 2000, "two notices");
		const lastId = first.named("notice").at(-1)!.lastEventId;
		expect(lastId).toBe(String(before[1]!.seq));
		first.close();
		await first.ended;

		const missed = [
			await notify(ann),
			await notify(ann),
			await notify(ann, { category: "security", template: "new-login", data: { client: "app", ip: "203.0.113.9", at: "today" } })
		];
		const again = await connected(ann, { lastEventId: lastId, region: "eu-central" });
		open.push(again);
		await again.until(() => noticesOf(again).length === 3, 2000, "the missed notices");
		expect(noticesOf(again)).toEqual(missed.map(n => ({ id: n.seq, notice: n })));
		await again.until(() => unreadOf(again).length === 1, 2000, "the unread count");
		expect(unreadOf(again)).toEqual([5]);

		const live = await notify(ann);
		await again.until(() => noticesOf(again).length === 4, 2000, "the live notice");
		expect(noticesOf(again).map(n => n.id)).toEqual([...missed, live].map(n => n.seq));
		again.close();
	});

	it("loses and repeats nothing when the client reconnects while notices keep coming", async () => {
		const base = (await notify(ann)).seq;
		const s1 = await connected(ann, { lastEventId: String(base) });
		const sent: Notice[] = [];
		const sends = (async () => {
			for (let i = 0; i < 40; i++) {
				sent.push(await notify(ann, { data: { amount: String(i + 1), currency: "EUR", from: "burst" } }));
				// Sends further apart than the outbox relay's kick delay (25 ms): closer ones hold every push back until they stop (reported).
				await new Promise(r => setTimeout(r, 30));
			}
		})();
		await s1.until(() => noticesOf(s1).length >= 8, 5000, "a first part of the burst");
		s1.close();
		const received = noticesOf(s1).map(n => n.id);
		const s2 = await connected(ann, { lastEventId: String(received.at(-1)), gateway: "api-www", region: "ap-south" });
		open.push(s2);
		// Reconnected while notices were still being sent: the resume and the live pushes overlap.
		const sentWhenResumed = sent.length;
		await sends;
		const last = sent.at(-1)!.seq;
		await s2.until(() => noticesOf(s2).at(-1)?.id === last, 5000, "the end of the burst");
		const all = [...received, ...noticesOf(s2).map(n => n.id)];
		expect(all).toEqual(sent.map(n => n.seq));
		expect(sentWhenResumed).toBeLessThan(sent.length);
		s2.close();
	});

	it("fills a skipped number from the inbox: a notice muted in the inbox was never pushed", async () => {
		const s = await connected(liwei);
		open.push(s);
		await s.until(() => unreadOf(s).length === 1, 2000, "the unread count");
		// liwei turned announcements off in the inbox: written read, not pushed.
		const muted = await notify(liwei, { category: "announcement", template: "message", data: { title: "Maintenance", body: "Sunday" } });
		expect(muted.read).toBe(true);
		const next = await notify(liwei);
		expect(next.seq).toBe(muted.seq + 1);
		await s.until(() => noticesOf(s).length === 2, 2000, "both notices");
		expect(noticesOf(s)).toEqual([
			{ id: muted.seq, notice: muted },
			{ id: next.seq, notice: next }
		]);
		s.close();
	});

	it("keeps a stream alive past the request timeout with heartbeats", async () => {
		const s = await connected(liwei);
		open.push(s);
		const opened = Date.now();
		await new Promise(r => setTimeout(r, REQUEST_TIMEOUT_MS + 500));
		expect(s.isEnded).toBe(false);
		expect(s.comments.length).toBeGreaterThanOrEqual(Math.floor((REQUEST_TIMEOUT_MS + 500) / HEARTBEAT_MS) - 1);
		const gaps = s.comments.map((at, i) => at - (s.comments[i - 1] ?? opened));
		expect(Math.max(...gaps)).toBeLessThan(HEARTBEAT_MS * 3);
		const sent = await notify(liwei);
		await s.until(() => noticesOf(s).some(n => n.id === sent.seq), 2000, "a notice after the request timeout");
		s.close();
	});

	it("refuses a user's sixth stream on a gateway with 429 TOO_MANY_STREAMS, and takes one again once one closes", async () => {
		const max = await user("max", "CN");
		const mine = await Promise.all([1, 2, 3, 4, 5].map(() => connected(max)));
		open.push(...mine);
		const sixth = await stream(max);
		expect(sixth.stream).toBeUndefined();
		expectError(sixth.refused!, 429, "TOO_MANY_STREAMS");
		// Other users are not held back by max's streams, nor is max on another gateway.
		(await connected(hans)).close();
		(await connected(max, { gateway: "api-app", token: await tokenFor("api-app", "cn-east", "max") })).close();

		mine[0]!.close();
		let replacement: EventStreamClient | undefined;
		await within(async () => {
			replacement = (await stream(max)).stream;
			return replacement !== undefined;
		}, 2000);
		open.push(replacement!);
		for (const s of [replacement!, ...mine]) s.close();
	});

	it("refuses a malformed Last-Event-ID (400); answers HEAD with a stream's headers and no stream", async () => {
		for (const lastEventId of ["seven", "-1", "1.5", "1".repeat(16)]) expectError((await stream(hans, { lastEventId })).refused!, 400, "VALIDATION_FAILED");
		const url = `${gatewayUrl(nodes["cn-east"]!.broker, "api-www")}/api/v1/me/notices/stream`;
		const head = await fetch(url, { method: "HEAD", headers: { authorization: `Bearer ${hans.token}` } });
		expect({ status: head.status, type: head.headers.get("content-type"), body: await head.text() }).toEqual({
			status: 200,
			type: "text/event-stream; charset=utf-8",
			body: ""
		});
		expect((await fetch(url, { method: "HEAD" })).status).toBe(401);
	});

	it("ends a stream whose session ends (logout), as any request of that token is refused", async () => {
		const token = await tokenFor("api-www", "cn-east", "liwei");
		liwei.token = token;
		const s = await connected(liwei, { token });
		await s.until(() => unreadOf(s).length === 1, 2000, "the unread count");
		expect((await www("POST", "/api/v1/auth/logout", { token })).status).toBe(204);
		const started = Date.now();
		await Promise.race([s.ended, new Promise((_, reject) => setTimeout(() => reject(new Error("the stream outlived its session")), 3000))]);
		console.log(`stream ended ${Date.now() - started} ms after its session (heartbeat every ${HEARTBEAT_MS} ms)`);
		expectError((await stream(liwei, { token })).refused!, 401, "UNAUTHORIZED");
	});

	it("follows a moved user: the stream ends with the token the move outdated, and a resume with a new one misses nothing", async () => {
		const mover = await user("mover", "JP");
		const s = await connected(mover);
		open.push(s);
		await s.until(() => unreadOf(s).length === 1, 2000, "the unread count");
		const before = await notify(mover);
		await s.until(() => noticesOf(s).length === 1, 2000, "a notice before the move");
		await nodes["cn-east"]!.broker.call("sv-region.move", { userId: mover.id, to: "eu-central" });
		const after = await notify(mover);
		// A token from before the move is refused everywhere: the stream of one ends too.
		await Promise.race([s.ended, new Promise((_, reject) => setTimeout(() => reject(new Error("the stream outlived its token")), 3000))]);
		expectError((await stream(mover)).refused!, 401, "UNAUTHORIZED");

		const token = await tokenFor("api-www", "cn-east", "mover");
		const again = await connected(mover, { token, lastEventId: s.named("notice").at(-1)!.lastEventId });
		open.push(again);
		// The move tells the user too (sv-region's move-completed notice, through the durable channel).
		let inbox: Notice[] = [];
		await within(async () => (inbox = (await www("GET", "/api/v1/me/notices", { token })).body.items).length === 3, 5000);
		expect(inbox.map(n => n.category).sort()).toEqual(["account", "wallet", "wallet"]);
		expect(inbox.map(n => n.id)).toContain(after.id);
		const numbers = inbox.map(n => n.seq).reverse();
		expect(numbers).toEqual([before.seq, before.seq + 1, before.seq + 2]);
		const both = () => [...noticesOf(s), ...noticesOf(again)].map(n => n.id);
		await again.until(() => both().at(-1) === numbers.at(-1), 3000, "every notice since the move");
		expect(both()).toEqual(numbers);
		again.close();
	});

	it("ends its streams cleanly when the gateway stops, and the stop does not wait for them", async () => {
		const s = await connected(hans, { region: "ap-south" });
		await s.until(() => unreadOf(s).length === 1, 2000, "the unread count");
		const broker = nodes["ap-south"]!.broker;
		const started = Date.now();
		await broker.destroyService(broker.getLocalService("api-www")!);
		const stopMs = Date.now() - started;
		await Promise.race([s.ended, new Promise((_, reject) => setTimeout(() => reject(new Error("the stream did not end")), 2000))]);
		console.log(`gateway stop with an open stream: ${stopMs} ms`);
		expect(stopMs).toBeLessThan(2000);
		expect(s.isEnded).toBe(true);
	});
});

async function tokenFor(gateway: GatewayName, region: string, login: string): Promise<string> {
	const res = await via(gateway, region)("POST", "/api/v1/auth/login", { body: { login, password: PASSWORD } });
	expect(res.status, res.text).toBe(200);
	return res.body.accessToken;
}
