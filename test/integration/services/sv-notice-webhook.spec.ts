import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../../app/node.ts";
import { noticeSubcommands } from "../../../app/repl/notice.command.ts";
import { channelsOf } from "../../../mixins/channels/runtime.ts";
import apiCms from "../../../services/api-cms/api-cms.service.ts";
import type { RateLimitedProvider } from "../../../services/sv-notice/rate-limit.ts";
import { DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER } from "../../../services/sv-notice/webhook-signature.ts";
import type { EmbeddedRegions } from "../../harness/embedded-regions.ts";
import { everyFeedHeard, everyRegionLinked, startEmbeddedRegions } from "../../harness/embedded-regions.ts";
import { gatewayUrl, http } from "../../harness/gateways.ts";
import type { Mailbox } from "../../harness/smtp-mailbox.ts";
import { MAIL_DOMAIN, startNoticeMailbox } from "../../harness/smtp-mailbox.ts";
import { within } from "../../harness/waiting.ts";
import type { WebhookReceiver } from "../../harness/webhook-receiver.ts";
import { startWebhookReceiver } from "../../harness/webhook-receiver.ts";

/*
 * sv-notice's webhooks to a local HTTP receiver that checks each request with the project's
 * verifier; retries, dead letters and their replay (REPL and api-cms), the hourly rate per user,
 * and an e-mail (a real SMTP server on loopback) that a failing webhook does not hold back.
 */

const SECRET = "webhook secret shared with the relay, 32+ bytes";
const RATE_PER_HOUR = 4;

let cluster: EmbeddedRegions | undefined;
let receiver: WebhookReceiver | undefined;
let mailbox: Mailbox | undefined;
let cleanupMail: (() => Promise<void>) | undefined;
const nodes: Record<string, RegionNode> = {};
const users: Record<string, { id: string; home: string }> = {};
let keys = 0;
let opsToken = "";
let plainToken = "";
/** The first test's notice, whose request the next one sends again. */
let first: { id: string } | undefined;

const call = <T = any>(action: string, params: unknown) => nodes["cn-east"]!.broker.call<T, unknown>(action, params);
const send = async (user: string) =>
	(
		await call<{ notice: { id: string; title: string; text: string; html: string; createdAt: string } }>("sv-notice.send", {
			userId: users[user]!.id,
			category: "account",
			template: "move-completed",
			data: { region: "ap-south" },
			idempotencyKey: `hook-${++keys}`
		})
	).notice;
const requestsFor = (noticeId: string) => receiver!.requests.filter(r => r.headers[DELIVERY_HEADER] === noticeId);
const handledOf = (noticeId: string) => receiver!.handled.filter(h => h.deliveryId === noticeId);
const cms = (method: string, path: string, token: string, body?: unknown) =>
	http(gatewayUrl(nodes["cn-east"]!.broker, "api-cms"), method, path, { token, ...(body ? { body } : {}) });
const webhookStats = (user: string) => channelsOf(nodes[users[user]!.home]!.broker).stats.find(s => s.counts.channel === "notice.webhook")!.counts;

async function login(username: string, role?: string): Promise<string> {
	const password = "staff work here 2026";
	const id = (await call<{ id: string }>("sv-user.register", { username, password, country: "CN" })).id;
	if (role) await call("auth-rbac.grant", { userId: id, role });
	const res = await http(gatewayUrl(nodes["cn-east"]!.broker, "api-cms"), "POST", "/api/v1/auth/login", { body: { login: username, password } });
	expect(res.status, res.text).toBe(200);
	return res.body.accessToken;
}

beforeAll(async () => {
	receiver = await startWebhookReceiver(SECRET);
	const smtp = await startNoticeMailbox();
	({ mailbox, cleanup: cleanupMail } = smtp);
	// sv-notice reads its settings from the process's environment when it is created.
	Object.assign(process.env, {
		...smtp.env,
		EDGEHOME_NOTICE_WEBHOOK_URL: receiver.url,
		EDGEHOME_NOTICE_WEBHOOK_SECRET: SECRET,
		EDGEHOME_NOTICE_WEBHOOK_TIMEOUT_MS: "2000",
		EDGEHOME_NOTICE_RATE_PER_HOUR: String(RATE_PER_HOUR),
		EDGEHOME_NOTICE_RELAY_MS: "50"
	});
	cluster = await startEmbeddedRegions({
		namespacePrefix: "notice-webhook-",
		services: ["sv-region", "sv-user", "sv-notice", "auth-jwt", "auth-rbac"],
		schemas: [{ ...apiCms, settings: { ...apiCms.settings, port: 0 } }]
	});
	await everyRegionLinked(cluster, 20_000);
	Object.assign(nodes, cluster.nodes);
	await everyFeedHeard(cluster, 20_000);
	for (const [name, country] of [
		["wendy", "CN"],
		["retry", "CN"],
		["dana", "DE"],
		["dirk", "DE"],
		["rita", "CN"]
	] as const) {
		const id = (await call<{ id: string }>("sv-user.register", { username: name, password: "Tr0ub4dor&3-hook", country, email: `${name}@example.com` })).id;
		users[name] = { id, home: (await call<{ region: string }>("sv-region.lookup", { userId: id })).region };
	}
	opsToken = await login("hook-ops", "ops");
	plainToken = await login("hook-plain");
}, 120_000);

afterAll(async () => {
	await cluster?.stop();
	await receiver?.stop();
	await cleanupMail?.();
});

describe("sv-notice by webhook", () => {
	it("posts the rendered notice, signed: the receiver's verifier admits it", async () => {
		const notice = (first = await send("wendy"));
		await within(() => handledOf(notice.id).length === 1, 10_000);
		const [request] = requestsFor(notice.id);
		expect(request!.status).toBe(200);
		expect(request!.headers).toMatchObject({ "content-type": "application/json", [DELIVERY_HEADER]: notice.id });
		expect(request!.headers[SIGNATURE_HEADER]).toMatch(/^v1=[0-9a-f]{64}$/);
		expect(Math.abs(Number(request!.headers[TIMESTAMP_HEADER]) - Date.now() / 1000)).toBeLessThan(10);
		// The rendered notice and whom it is for: nothing of the template's data by itself.
		expect(handledOf(notice.id)[0]!.body).toEqual({
			id: notice.id,
			userId: users.wendy!.id,
			category: "account",
			title: notice.title,
			text: notice.text,
			html: notice.html,
			createdAt: notice.createdAt
		});
	});

	it("a replayed webhook (the same request sent again) is refused by the verifier, and so is a changed one", async () => {
		const [original] = requestsFor(first!.id);
		const resend = (body: string) =>
			fetch(receiver!.url, {
				method: "POST",
				headers: Object.fromEntries([TIMESTAMP_HEADER, DELIVERY_HEADER, SIGNATURE_HEADER, "content-type"].map(h => [h, String(original!.headers[h])])),
				body
			});
		expect((await resend(original!.body)).status).toBe(409);
		expect(receiver!.requests.at(-1)!.refused).toBe("replayed");
		expect((await resend(original!.body.replace("ap-south", "eu-central"))).status).toBe(401);
		expect(receiver!.requests.at(-1)!.refused).toBe("invalid signature");
		expect(handledOf(String(original!.headers[DELIVERY_HEADER]))).toHaveLength(1);
	});

	it("a receiver answering 500, then 200, gets the notice once, after a retry", async () => {
		let failures = 0;
		receiver!.answer = () => (failures++ === 0 ? 500 : 200);
		try {
			const notice = await send("retry");
			await within(() => handledOf(notice.id).length === 1, 10_000);
			await new Promise(r => setTimeout(r, 500));
			expect(requestsFor(notice.id).map(r => r.status)).toEqual([500, 200]);
			expect(handledOf(notice.id)).toHaveLength(1);
		} finally {
			receiver!.answer = () => 200;
		}
	});

	it("dead-letters a webhook that keeps failing (the e-mail and the inbox go on), and ops replay it from the REPL and api-cms", async () => {
		const failing = new Set<string>();
		receiver!.answer = id => (failing.has(id) ? 503 : 200);
		try {
			const notices = { dana: await send("dana"), dirk: await send("dirk") };
			for (const n of Object.values(notices)) failing.add(n.id);
			// The other channel and the inbox are not held back by the failing webhook.
			await within(() => Object.values(notices).every(n => mailbox!.received.some(m => m.mail.messageId === `<${n.id}@${MAIL_DOMAIN}>`)), 10_000);
			expect((await call("sv-notice.list", { userId: users.dana!.id, limit: 5 })).items[0].id).toBe(notices.dana.id);

			// 1 + 8 retries with back-off from 100 ms doubling (jittered): about half a minute.
			const home = users.dana!.home;
			const started = Date.now();
			await within(async () => (await channelsOf(nodes[home]!.broker).store.deadLetters("notice.webhook", 10)).length === 2, 60_000);
			console.log(`dead-lettered after ${requestsFor(notices.dana.id).length} attempts in ${Date.now() - started} ms`);
			expect(requestsFor(notices.dana.id).map(r => r.status)).toEqual(Array(9).fill(503));
			expect(webhookStats("dana").deadLettered).toBe(2);

			const printed: string[] = [];
			const dlq = noticeSubcommands({ regions: [], print: line => printed.push(line) }).dlq!;
			await dlq.run(nodes[home]!.broker, ["list"]);
			const line = (noticeId: string) => printed.find(l => l.includes(`notice=${noticeId}`));
			expect(line(notices.dana.id)).toMatch(
				/^\S+ webhook notice=\S+ user=\S+ attempts=9 at=\S+ error=NOTICE_DELIVERY_FAILED: webhook delivery failed: the receiver answered 503$/
			);
			const danaLetter = line(notices.dana.id)!.split(" ")[0]!;

			// api-cms in cn-east, for the dead letters of eu-central; ops only.
			expect((await cms("GET", `/api/v1/admin/notices/dead-letters?region=${home}`, plainToken)).status).toBe(403);
			const listed = await cms("GET", `/api/v1/admin/notices/dead-letters?region=${home}`, opsToken);
			expect(listed.status, listed.text).toBe(200);
			expect(listed.body.region).toBe(home);
			const dirkLetter = listed.body.items.find((d: { noticeId: string }) => d.noticeId === notices.dirk.id);
			expect(dirkLetter).toMatchObject({
				channel: "webhook",
				userId: users.dirk!.id,
				category: "account",
				title: notices.dirk.title,
				errorType: "NOTICE_DELIVERY_FAILED",
				attempts: 9
			});
			expect(listed.body.items.map((d: { id: string }) => d.id)).toContain(danaLetter);
			const missing = await cms("POST", `/api/v1/admin/notices/dead-letters/${dirkLetter.id}x/replay`, opsToken, { region: home });
			expect([missing.status, missing.body.error.code]).toEqual([404, "DEAD_LETTER_NOT_FOUND"]);

			// The relay is fixed; both are delivered again, once each.
			failing.clear();
			printed.length = 0;
			await dlq.run(nodes[home]!.broker, ["replay", danaLetter]);
			expect(printed).toEqual([expect.stringMatching(new RegExp(`^replayed ${danaLetter} to webhook as \\S+$`))]);
			const replayed = await cms("POST", `/api/v1/admin/notices/dead-letters/${dirkLetter.id}/replay`, opsToken, { region: home });
			expect(replayed.status, replayed.text).toBe(200);
			expect(replayed.body).toMatchObject({ id: dirkLetter.id, channel: "webhook", region: home, replayedAs: expect.any(String) });
			await within(() => Object.values(notices).every(n => handledOf(n.id).length === 1), 10_000);
			expect(await channelsOf(nodes[home]!.broker).store.deadLetters("notice.webhook", 10)).toEqual([]);
			printed.length = 0;
			await dlq.run(nodes[home]!.broker, ["list"]);
			expect(printed).toEqual(["no notice dead letters in this region"]);
		} finally {
			receiver!.answer = () => 200;
		}
	}, 90_000);

	it(`sends a user at most ${RATE_PER_HOUR} webhooks an hour; the rest are skipped and counted, in the inbox all the same`, async () => {
		const provider = nodes[users.rita!.home]!.broker.getLocalService("sv-notice") as unknown as { providers: { webhook: RateLimitedProvider } };
		const skippedBefore = provider.providers.webhook.skipped;
		const acknowledged = webhookStats("rita").acknowledged;
		const sent = [];
		for (let i = 0; i < RATE_PER_HOUR + 2; i++) sent.push(await send("rita"));
		await within(() => webhookStats("rita").acknowledged === acknowledged + sent.length, 10_000);
		expect(sent.map(n => handledOf(n.id).length)).toEqual([...Array(RATE_PER_HOUR).fill(1), 0, 0]);
		expect(provider.providers.webhook.skipped - skippedBefore).toBe(2);
		expect((await call("sv-notice.list", { userId: users.rita!.id, limit: 100 })).items).toHaveLength(sent.length);
	});
});
