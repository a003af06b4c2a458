import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../../app/node.ts";
import { channelsOf } from "../../../mixins/channels/runtime.ts";
import type { EmbeddedRegions } from "../../harness/embedded-regions.ts";
import { everyRegionLinked, startEmbeddedRegions } from "../../harness/embedded-regions.ts";
import type { Mailbox, ReceivedMail } from "../../harness/smtp-mailbox.ts";
import { addressesOf, MAIL_DOMAIN as DOMAIN, SMTP_USER, startNoticeMailbox } from "../../harness/smtp-mailbox.ts";
import { within } from "../../harness/waiting.ts";

/*
 * sv-notice's e-mails through a real SMTP server on loopback (smtp-server, over TCP, STARTTLS with a
 * certificate of a private CA, AUTH), parsed as a mail client would (mailparser).
 */

let cluster: EmbeddedRegions | undefined;
let mailbox: Mailbox | undefined;
let cleanup: (() => Promise<void>) | undefined;
const nodes: Record<string, RegionNode> = {};
const users: Record<string, { id: string; email: string | null; home: string }> = {};
let keys = 0;

const call = <T = any>(action: string, params: unknown) => nodes["cn-east"]!.broker.call<T, unknown>(action, params);
const send = (user: string, data: Record<string, string> = {}) =>
	call<{ notice: { id: string; seq: number; title: string; text: string; html: string; createdAt: string } }>("sv-notice.send", {
		userId: users[user]!.id,
		category: "wallet",
		template: "transfer-received",
		data: { amount: "12345", currency: "CNY", from: "alice", ...data },
		idempotencyKey: `mail-${++keys}`
	});
const mailOf = (noticeId: string) => mailbox!.received.filter(m => m.mail.messageId === `<${noticeId}@${DOMAIN}>`);
const emailStats = (user: string) => channelsOf(nodes[users[user]!.home]!.broker).stats.find(s => s.counts.channel === "notice.email")!.counts;

beforeAll(async () => {
	const smtp = await startNoticeMailbox();
	({ mailbox, cleanup } = smtp);
	// sv-notice reads its settings from the process's environment when it is created.
	Object.assign(process.env, {
		...smtp.env,
		EDGEHOME_NOTICE_RELAY_MS: "50"
	});
	cluster = await startEmbeddedRegions({ namespacePrefix: "notice-email-", services: ["sv-region", "sv-user", "sv-notice"] });
	await everyRegionLinked(cluster, 20_000);
	Object.assign(nodes, cluster.nodes);
	for (const [name, email, country] of [
		["mia", "mia@example.com", "CN"],
		["noah", "noah@example.com", "DE"],
		["quiet", null, "CN"]
	] as const) {
		const id = (await call<{ id: string }>("sv-user.register", { username: name, password: "Tr0ub4dor&3-mail", country, ...(email ? { email } : {}) })).id;
		users[name] = { id, email, home: (await call<{ region: string }>("sv-region.lookup", { userId: id })).region };
	}
}, 120_000);

afterAll(async () => {
	await cluster?.stop();
	await cleanup?.();
});

describe("sv-notice by e-mail over SMTP", () => {
	it("delivers a notice over TLS to the user's address: Message-ID from the notice, subject the title, text and escaped HTML bodies", async () => {
		const { notice } = await send("mia", { from: "<script>alert(1)</script>" });
		await within(() => mailOf(notice.id).length === 1, 10_000);
		const [received] = mailOf(notice.id) as [ReceivedMail];
		const { mail } = received;
		expect(received).toMatchObject({ recipients: ["mia@example.com"], secure: true, user: SMTP_USER });
		expect(addressesOf(mail.from)).toEqual([`notices@${DOMAIN}`]);
		expect(addressesOf(mail.to)).toEqual(["mia@example.com"]);
		expect(mail.subject).toBe("You received 123.45 CNY");
		// The Date header has whole seconds.
		expect(mail.date?.getTime()).toBe(Math.floor(Date.parse(notice.createdAt) / 1000) * 1000);
		expect(mail.headers.get("auto-submitted")).toBe("auto-generated");
		expect(mail.text?.trim()).toBe(notice.text);
		expect(mail.text).toContain("<script>alert(1)</script> sent you 123.45 CNY.");
		expect(mail.html).toBe(notice.html);
		expect(mail.html).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
		expect(mail.html).not.toContain("<script>");
		// Only what the notice shows: the template's data never travels by itself.
		expect(JSON.stringify(mail.headers)).not.toContain("12345");
	});

	it("sends nothing to a user without an e-mail address, and takes the delivery as done", async () => {
		// The last test's delivery is acknowledged after its mail arrived: settled first, so the count below moves by this send alone.
		await within(() => emailStats("quiet").inFlight === 0, 10_000);
		const before = mailbox!.received.length;
		const acknowledged = emailStats("quiet").acknowledged;
		const { notice } = await send("quiet");
		await within(() => emailStats("quiet").acknowledged === acknowledged + 1, 10_000);
		expect(mailOf(notice.id)).toEqual([]);
		expect(mailbox!.received.slice(before).flatMap(m => m.recipients)).toEqual([]);
	});

	it("holds e-mails while the SMTP server is down and delivers each exactly once, in order per user, once it is back", async () => {
		await mailbox!.stop();
		const sent: Record<string, string[]> = { mia: [], noah: [] };
		for (let i = 0; i < 5; i++) for (const user of ["mia", "noah"]) sent[user]!.push((await send(user, { amount: String(100 + i) })).notice.id);
		const all = [...sent.mia!, ...sent.noah!];
		// Down: each user's first e-mail is being retried with back-off; nothing arrives.
		await within(() => emailStats("mia").redelivered > 0 && emailStats("noah").redelivered > 0, 10_000);
		await new Promise(r => setTimeout(r, 1000));
		expect(all.flatMap(mailOf)).toEqual([]);

		await mailbox!.start();
		const recovery = await within(() => all.every(id => mailOf(id).length > 0), 30_000);
		// Long enough for a stray second copy to show up.
		await new Promise(r => setTimeout(r, 1500));
		const copies = all.map(id => mailOf(id).length);
		expect(copies).toEqual(all.map(() => 1));
		for (const user of ["mia", "noah"]) {
			const arrived = mailbox!.received.filter(m => m.recipients[0] === users[user]!.email).map(m => m.mail.messageId);
			expect(arrived.filter(id => sent[user]!.some(n => id === `<${n}@${DOMAIN}>`))).toEqual(sent[user]!.map(n => `<${n}@${DOMAIN}>`));
		}
		const retried = emailStats("mia").redelivered + (users.noah!.home === users.mia!.home ? 0 : emailStats("noah").redelivered);
		console.log(
			`SMTP outage: sent=${all.length} delivered=${copies.filter(c => c > 0).length} duplicates=${copies.reduce((n, c) => n + Math.max(0, c - 1), 0)} ` +
				`redeliveries=${retried} all in ${recovery} ms after the server was back`
		);
	}, 60_000);
});
