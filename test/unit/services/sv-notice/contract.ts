import type { Context, Service } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../../../app/node.ts";
import type { PushedNotice, Pushes } from "../../../../services/sv-notice/sv-notice.service.ts";
import { PUSH_EVENT } from "../../../../services/sv-notice/sv-notice.service.ts";
import type { EmbeddedRegions } from "../../../harness/embedded-regions.ts";
import { everyRegionLinked, REGION_IDS, startEmbeddedRegions } from "../../../harness/embedded-regions.ts";
import { within } from "../../../harness/waiting.ts";

/** sv-notice's rules on each SQL store it ships with: three regions in one process. */
export function noticeContract(store: string, opts: { sqlOf?: (region: string) => string; cleanup?: () => Promise<void> } = {}): void {
	const nodes: Record<string, RegionNode> = {};
	let cluster: EmbeddedRegions | undefined;
	const users: Record<string, string> = {};
	const call = <T = any>(from: string, action: string, params: unknown) => nodes[from]!.broker.call<T, unknown>(action, params);
	const pushes: Record<string, PushedNotice[]> = {};
	/** Push events heard per region (one carries a committed batch's pushes). */
	const events: Record<string, number> = {};
	let keys = 0;
	const key = () => `n-${++keys}-${Date.now()}`;
	const send = (name: string, over: Record<string, unknown> = {}, from = "cn-east") =>
		call(from, "sv-notice.send", {
			userId: users[name],
			category: "wallet",
			template: "transfer-received",
			data: { amount: "12345", currency: "CNY", from: "alice" },
			idempotencyKey: key(),
			...over
		});

	describe(`sv-notice on ${store}`, () => {
		beforeAll(async () => {
			cluster = await startEmbeddedRegions({
				namespacePrefix: `svnotice-${store}-`,
				services: ["sv-region", "sv-user", "auth-jwt", "sv-money", "sv-notice"],
				schemas: [
					{
						// What a gateway's live streams do with the pushes: a listener in every region, recording what it heard there.
						name: "push-listener",
						events: {
							[PUSH_EVENT]: {
								global: true,
								handler(this: Service, ctx: Context<Pushes>) {
									const region = REGION_IDS.find(r => this.broker.namespace.endsWith(r))!;
									(pushes[region] ??= []).push(...ctx.params.pushes);
									events[region] = (events[region] ?? 0) + 1;
								}
							}
						}
					}
				],
				env: { EDGEHOME_NOTICE_RELAY_MS: "50" },
				sqlOf: opts.sqlOf
			});
			Object.assign(nodes, cluster.nodes);
			await everyRegionLinked(cluster, 20_000);
			for (const [name, country] of [
				["hans", "DE"],
				["liwei", "CN"]
			] as const) {
				users[name] = (await call<{ id: string }>("cn-east", "sv-user.register", { username: name, password: "Tr0ub4dor&3-notice", country })).id;
			}
		}, 120_000);

		afterAll(async () => {
			await cluster?.stop();
			await opts.cleanup?.();
		});

		it("writes one inbox entry per key, rendered and escaped, in the user's home region only", async () => {
			const k = key();
			const first = await send("hans", { idempotencyKey: k, data: { amount: "12345", currency: "CNY", from: "<script>x</script>" } });
			expect(first).toMatchObject({ replayed: false, notice: { category: "wallet", title: "You received 123.45 CNY", read: false, seq: 1 } });
			expect(first.notice.html).toContain("&lt;script&gt;");
			expect(first.notice.html).not.toContain("<script>");
			const again = await send("hans", { idempotencyKey: k }, "ap-south");
			expect(again).toEqual({ replayed: true, notice: first.notice });
			for (const region of ["cn-east", "ap-south"]) expect(await nodes[region]!.stores.sql.db.selectFrom("notice_inbox").selectAll().execute()).toHaveLength(0);
			expect(await call("cn-east", "sv-notice.unreadCount", { userId: users.hans })).toEqual({ unread: 1 });
		});

		it("refuses a send whose template is unknown or whose data is missing, writing nothing", async () => {
			await expect(send("hans", { template: "nope" })).rejects.toMatchObject({ type: "TEMPLATE_NOT_FOUND", code: 422 });
			await expect(send("hans", { data: { amount: "1", currency: "CNY" } })).rejects.toMatchObject({ type: "TEMPLATE_DATA_MISSING", data: { field: "from" } });
			await expect(send("hans", { category: "gossip" })).rejects.toMatchObject({ type: "VALIDATION_ERROR" });
			expect(await call("cn-east", "sv-notice.unreadCount", { userId: users.hans })).toEqual({ unread: 1 });
		});

		it("pushes each notice to every region's listeners once it is committed, with the unread count", async () => {
			const sent = await send("liwei");
			for (const region of ["cn-east", "ap-south", "eu-central"])
				await within(async () => (pushes[region] ?? []).some(p => p.notice?.id === sent.notice.id && p.unreadCount === 1), 5000);
		});

		it("sends the pushes of a committed batch to every region in one event", async () => {
			const service = nodes["cn-east"]!.broker.getLocalService("sv-notice") as unknown as { pushCommitted(outcomes: unknown[]): void };
			const before = events["ap-south"] ?? 0;
			service.pushCommitted([{ push: { userId: users.hans, unreadCount: 70 } }, {}, { push: { userId: users.liwei, unreadCount: 71 } }]);
			await within(async () => (pushes["ap-south"] ?? []).some(p => p.unreadCount === 71), 5000);
			await new Promise(r => setTimeout(r, 100));
			expect(events["ap-south"]).toBe(before + 1);
			expect((pushes["ap-south"] ?? []).filter(p => p.unreadCount >= 70).map(p => p.userId)).toEqual([users.hans, users.liwei]);
		});

		it("commits sends with large template data in batches that stay small, each send once", async () => {
			const service = nodes["cn-east"]!.broker.getLocalService("sv-notice") as unknown as { sends: { stats: { batches: number; sends: number } } };
			// 32 fields of 2000 characters: about 66 KB a send, so that a batch takes at most 4 (256 KiB of data).
			const data = { amount: "1", currency: "CNY", from: "bob", ...Object.fromEntries(Array.from({ length: 29 }, (_, i) => [`extra${i}`, "x".repeat(2000)])) };
			const before = { ...service.sends.stats };
			const sent = await Promise.all(Array.from({ length: 12 }, () => send("liwei", { data })));
			expect(new Set(sent.map(s => s.notice.id)).size).toBe(12);
			expect(service.sends.stats.sends - before.sends).toBe(12);
			expect(service.sends.stats.batches - before.batches).toBeGreaterThanOrEqual(3);
		});

		it("numbers a user's notices in order and resumes a stream after any of them", async () => {
			const sent = [];
			for (let i = 0; i < 5; i++) sent.push(await send("liwei"));
			const seqs = sent.map(s => s.notice.seq);
			expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
			const after = await call("eu-central", "sv-notice.since", { userId: users.liwei, after: seqs[1] });
			expect(after.map((n: { seq: number }) => n.seq)).toEqual(seqs.slice(2));
		});

		it("numbers sends made at once in order, without gaps, and writes a key sent at once from several places once", async () => {
			const before = (await call("cn-east", "sv-notice.list", { userId: users.liwei, limit: 1 })).items[0].seq;
			const k = key();
			const sent = await Promise.all([
				...Array.from({ length: 12 }, () => send("liwei")),
				...["cn-east", "ap-south", "eu-central", "cn-east"].map(from => send("liwei", { idempotencyKey: k }, from))
			]);
			const once = sent.slice(12);
			expect(new Set(once.map(s => s.notice.id)).size).toBe(1);
			expect(once.filter(s => !s.replayed)).toHaveLength(1);
			const seqs = sent.slice(0, 13).map(s => s.notice.seq as number);
			expect([...seqs].sort((a, b) => a - b)).toEqual(Array.from({ length: 13 }, (_, i) => before + 1 + i));
		});

		it("lists newest first with a cursor, reads, reads all and deletes; another user's notice is not found", async () => {
			const page = await call("cn-east", "sv-notice.list", { userId: users.liwei, limit: 2 });
			expect(page.items).toHaveLength(2);
			const next = await call("cn-east", "sv-notice.list", { userId: users.liwei, limit: 2, cursor: page.nextCursor });
			expect(next.items[0].seq).toBeLessThan(page.items[1].seq);
			await call("cn-east", "sv-notice.markRead", { userId: users.liwei, id: page.items[0].id });
			expect((await call("cn-east", "sv-notice.list", { userId: users.liwei, unread: true, limit: 100 })).items.map((n: { id: string }) => n.id)).not.toContain(
				page.items[0].id
			);
			await expect(call("cn-east", "sv-notice.markRead", { userId: users.hans, id: page.items[1].id })).rejects.toMatchObject({
				type: "NOTICE_NOT_FOUND",
				code: 404
			});
			await expect(call("cn-east", "sv-notice.remove", { userId: users.hans, id: page.items[1].id })).rejects.toMatchObject({ type: "NOTICE_NOT_FOUND" });
			await call("cn-east", "sv-notice.remove", { userId: users.liwei, id: page.items[1].id });
			expect((await call("cn-east", "sv-notice.list", { userId: users.liwei, limit: 100 })).items.map((n: { id: string }) => n.id)).not.toContain(
				page.items[1].id
			);
			expect(await call("cn-east", "sv-notice.readAll", { userId: users.liwei })).toMatchObject({ unread: 0 });
			expect(await call("cn-east", "sv-notice.unreadCount", { userId: users.liwei })).toEqual({ unread: 0 });
		});

		it("keeps the unread count exact through sends, reads, deletes, reading all and a move", async () => {
			const anya = (await call<{ id: string }>("cn-east", "sv-user.register", { username: "anya", password: "Tr0ub4dor&3-notice", country: "JP" })).id;
			const unread = async (from = "cn-east") => (await call<{ unread: number }>(from, "sv-notice.unreadCount", { userId: anya })).unread;
			const to = (over: Record<string, unknown> = {}) =>
				call("cn-east", "sv-notice.send", {
					userId: anya,
					category: "wallet",
					template: "transfer-received",
					data: { amount: "1", currency: "EUR", from: "bo" },
					idempotencyKey: key(),
					...over
				});
			const sent = await Promise.all([to(), to(), to(), to()]);
			expect(await unread()).toBe(4);
			const k = key();
			await Promise.all([to({ idempotencyKey: k }), to({ idempotencyKey: k })]);
			expect(await unread()).toBe(5);
			const [a, b, c] = sent.map(s => s.notice.id as string);
			expect(await call("cn-east", "sv-notice.markRead", { userId: anya, id: a })).toEqual({ unread: 4 });
			expect(await call("cn-east", "sv-notice.markRead", { userId: anya, id: a })).toEqual({ unread: 4 });
			expect(await call("cn-east", "sv-notice.remove", { userId: anya, id: b })).toEqual({ unread: 3 });
			expect(await call("cn-east", "sv-notice.remove", { userId: anya, id: a })).toEqual({ unread: 3 });
			await expect(call("cn-east", "sv-notice.remove", { userId: anya, id: b })).rejects.toMatchObject({ type: "NOTICE_NOT_FOUND" });
			expect(await call("cn-east", "sv-notice.markRead", { userId: anya, id: c })).toEqual({ unread: 2 });
			expect(await call("cn-east", "sv-notice.readAll", { userId: anya })).toEqual({ marked: 2, unread: 0 });
			expect(await unread()).toBe(0);
			await Promise.all([to(), to()]);
			expect(await unread("ap-south")).toBe(2);
			const last = (await call("cn-east", "sv-notice.list", { userId: anya, limit: 1 })).items[0].seq as number;
			await call("cn-east", "sv-region.move", { userId: anya, to: "ap-south" });
			// The move's own notice ("moved to ap-south") comes through the durable channel.
			await within(async () => (await unread()) === 3, 10_000);
			const after = await to();
			expect(after.notice.seq).toBe(last + 2);
			expect(await unread("eu-central")).toBe(4);
		});

		it("keeps preferences: a muted category is written read and not pushed; security stays on; the user's locale is used", async () => {
			const prefs = await call("cn-east", "sv-notice.getPreferences", { userId: users.liwei });
			expect(prefs).toMatchObject({ locale: "en", channels: { inbox: { security: true, wallet: true } } });
			const off = { ...prefs.channels, inbox: { ...prefs.channels.inbox, security: false } };
			await expect(call("cn-east", "sv-notice.setPreferences", { userId: users.liwei, locale: "zh", channels: off })).rejects.toMatchObject({
				type: "SECURITY_NOTICES_REQUIRED",
				code: 422
			});
			const muted = { ...prefs.channels, inbox: { ...prefs.channels.inbox, wallet: false } };
			expect(await call("cn-east", "sv-notice.setPreferences", { userId: users.liwei, locale: "zh", channels: muted })).toMatchObject({
				locale: "zh",
				channels: { inbox: { wallet: false, security: true } }
			});
			const quiet = await send("liwei");
			expect(quiet.notice).toMatchObject({ read: true, title: "您收到 123.45 CNY" });
			const english = await send("liwei", { category: "account", template: "move-completed", data: { region: "eu-central" } });
			expect(english.notice.title).toBe("Your account moved to eu-central");
			await expect(call("cn-east", "sv-notice.setPreferences", { userId: users.liwei, locale: "fr", channels: muted })).rejects.toMatchObject({
				type: "VALIDATION_ERROR"
			});
		});

		it("tells a payee of money received and a payer of a transfer refunded, through the wallet's outbox", async () => {
			await call("cn-east", "sv-money.adjust", { userId: users.liwei, amount: "1000", currency: "CNY", reason: "seed", operator: users.hans });
			const titles = async (name: string) =>
				(await call("cn-east", "sv-notice.list", { userId: users[name], limit: 100 })).items.map((n: { title: string }) => n.title);
			const paid = await call("cn-east", "sv-money.transfer", { userId: users.liwei, to: "hans", amount: "250", currency: "CNY", idempotencyKey: key() });
			await within(async () => (await titles("hans")).includes("You received 2.50 CNY"), 10_000);
			await call("cn-east", "sv-money.freeze", { userId: users.hans });
			const refused = await call("cn-east", "sv-money.transfer", { userId: users.liwei, to: "hans", amount: "125", currency: "CNY", idempotencyKey: key() });
			await within(async () => (await titles("liwei")).some((t: string) => t.includes("1.25 CNY")), 10_000);
			await call("cn-east", "sv-money.unfreeze", { userId: users.hans });
			expect([paid.transfer.status, refused.transfer.status]).toEqual(["pending", "pending"]);
		});

		it("moves the inbox with the user, numbering going on where it was, and tells the user the move is done", async () => {
			const before = await call("cn-east", "sv-notice.list", { userId: users.liwei, limit: 100 });
			const prefs = await call("cn-east", "sv-notice.getPreferences", { userId: users.liwei });
			await call("cn-east", "sv-region.move", { userId: users.liwei, to: "ap-south" });
			expect(await call("cn-east", "sv-notice.getPreferences", { userId: users.liwei })).toEqual(prefs);
			expect(await nodes["cn-east"]!.stores.sql.db.selectFrom("notice_inbox").selectAll().execute()).toHaveLength(0);
			let after: { items: { seq: number; title: string }[] } = { items: [] };
			await within(async () => {
				after = await call("eu-central", "sv-notice.list", { userId: users.liwei, limit: 100 });
				return after.items.some(n => n.title === "Your account moved to ap-south");
			}, 10_000);
			expect(after.items.slice(1)).toEqual(before.items);
			expect(after.items[0]!.seq).toBe(before.items[0].seq + 1);
		});

		it("tells a user of a sign-in from an IP their login never succeeded from, once", async () => {
			const login = (ip: string) =>
				nodes["ap-south"]!.broker.call("auth-jwt.login", { login: "hans", password: "Tr0ub4dor&3-notice", client: "app" }, { meta: { clientIp: ip } });
			const newLogins = async () =>
				(await call("cn-east", "sv-notice.list", { userId: users.hans, limit: 100 })).items.filter((n: { category: string }) => n.category === "security");
			await login("198.51.100.7");
			await within(async () => (await newLogins()).length === 1, 10_000);
			expect((await newLogins())[0]).toMatchObject({ title: "New sign-in to your account" });
			expect((await newLogins())[0].text).toContain("198.51.100.7");
			await login("198.51.100.7");
			await login("198.51.100.8");
			await within(async () => (await newLogins()).length === 2, 10_000);
			await new Promise(r => setTimeout(r, 300));
			expect(await newLogins()).toHaveLength(2);
		});
	});
}
