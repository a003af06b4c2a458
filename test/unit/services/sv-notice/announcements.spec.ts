import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { Context, Service, ServiceSchema } from "moleculer";
import { Errors } from "moleculer";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { userKey } from "../../../../regions/directory/entries.ts";
import shipped from "../../../../services/sv-notice/sv-notice.service.ts";
import type { EmbeddedRegions } from "../../../harness/embedded-regions.ts";
import { everyRegionLinked, startEmbeddedRegions } from "../../../harness/embedded-regions.ts";
import { within } from "../../../harness/waiting.ts";

const svNotice = shipped as unknown as ServiceSchema;

interface Progress {
	id: string;
	title: string;
	regions: Record<
		string,
		{ targeted: number; written: number; pushed: number; failed: number; done: boolean; failures: { type: string; message: string; users: number }[] }
	>;
}

/** Announcements fanned out over each targeted region's users (three regions in one process, SQLite). */
describe("sv-notice announcements", () => {
	let cluster: EmbeddedRegions;
	const call = <T = any>(from: string, action: string, params: unknown) => cluster.nodes[from]!.broker.call<T, unknown>(action, params);
	const homeOf: Record<string, string> = {};
	const progress = (id: string) => call<Progress>("ap-south", "sv-notice.announcement", { id });
	const settled = async (id: string, regions: string[]) => {
		await within(async () => {
			const p = await progress(id);
			return regions.every(r => p.regions[r]?.done);
		}, 60_000);
		return progress(id);
	};
	/** Entries of announcement `id` in `region`, per user. */
	const entriesIn = async (region: string, id: string) =>
		(await cluster.nodes[region]!.stores.sql.db.selectFrom("notice_inbox")
			.select(["user_id", eb => eb.fn.countAll().as("n")])
			.where("idempotency_key", "=", `announcement:${id}`)
			.groupBy("user_id")
			.execute()) as { user_id: string; n: number | string }[];
	const usersIn = async (region: string) => (await cluster.nodes[region]!.stores.sql.db.selectFrom("users").select("id").execute()).map(r => r.id as string);

	/**
	 * `n` users of `region` at once: their rows and directory entries written directly, as a
	 * registered user's are (registering thousands through scrypt would take minutes).
	 */
	async function addUsers(region: string, n: number): Promise<void> {
		const home = (await cluster.store.get(userKey(homeOf[region]!)))!.value;
		const db = cluster.nodes[region]!.stores.sql.db;
		const now = Date.now();
		for (let i = 0; i < n; i += 500) {
			const rows = Array.from({ length: Math.min(500, n - i) }, () => {
				const id = randomBytes(13).toString("hex");
				return { id, username: `u${id.slice(0, 20)}`, password_hash: "-", created_at: now, updated_at: now };
			});
			await db.insertInto("users").values(rows).execute();
			for (const r of rows) await cluster.store.create(userKey(r.id), home);
		}
	}

	beforeAll(async () => {
		// sv-notice reads its settings from the process's environment: a dead node's hold lapses after 1 s here.
		vi.stubEnv("EDGEHOME_NOTICE_RELAY_MS", "50");
		vi.stubEnv("EDGEHOME_NOTICE_ANNOUNCE_POLL_MS", "100");
		vi.stubEnv("EDGEHOME_NOTICE_ANNOUNCE_LEASE_MS", "1000");
		// Three attempts, 20 then 40 ms apart at most: well inside the hold.
		vi.stubEnv("EDGEHOME_NOTICE_ANNOUNCE_ATTEMPTS", "3");
		vi.stubEnv("EDGEHOME_NOTICE_ANNOUNCE_RETRY_MS", "20");
		cluster = await startEmbeddedRegions({ namespacePrefix: "svnotice-announce-", services: ["sv-region", "sv-user", "sv-notice"] });
		await everyRegionLinked(cluster, 20_000);
		for (const [region, country] of [
			["cn-east", "CN"],
			["eu-central", "DE"],
			["ap-south", "IN"]
		] as const)
			homeOf[region] = (await call<{ id: string }>(region, "sv-user.register", { username: `first-${region}`, password: "Tr0ub4dor&3-notice", country })).id;
		await addUsers("cn-east", 40);
		await addUsers("eu-central", 25);
	}, 60_000);

	afterAll(async () => {
		await cluster?.stop();
		vi.unstubAllEnvs();
	});

	it("writes one entry to every user of the targeted regions only, and counts them", async () => {
		const { id } = await call<{ id: string }>("ap-south", "sv-notice.announce", {
			title: "Maintenance",
			body: "Tonight <b>02:00</b>",
			regions: ["cn-east", "eu-central"]
		});
		const p = await settled(id, ["cn-east", "eu-central"]);
		expect(p).toMatchObject({ id, title: "Maintenance" });
		expect(Object.keys(p.regions).sort()).toEqual(["cn-east", "eu-central"]);
		for (const region of ["cn-east", "eu-central"]) {
			const users = await usersIn(region);
			expect(p.regions[region]).toEqual({ targeted: users.length, written: users.length, pushed: users.length, failed: 0, done: true, failures: [] });
			const entries = await entriesIn(region, id);
			expect(entries.map(e => e.user_id).sort()).toEqual(users.sort());
			expect(entries.every(e => Number(e.n) === 1)).toBe(true);
		}
		expect(await entriesIn("ap-south", id)).toEqual([]);
		const [entry] = (await call<{ items: { title: string; html: string; category: string }[] }>("cn-east", "sv-notice.list", { userId: homeOf["cn-east"] }))
			.items;
		expect(entry).toMatchObject({ category: "announcement", title: "Maintenance", html: "<p>Tonight &lt;b&gt;02:00&lt;/b&gt;</p>" });
	});

	it("refuses an unknown region, an oversized title or body, and an unknown announcement", async () => {
		const announce = (over: Record<string, unknown>) => call("cn-east", "sv-notice.announce", { title: "t", body: "b", regions: ["cn-east"], ...over });
		await expect(announce({ regions: ["mars-1"] })).rejects.toMatchObject({ code: 422, type: "UNKNOWN_REGION" });
		await expect(announce({ title: "x".repeat(201) })).rejects.toMatchObject({ code: 422 });
		await expect(announce({ body: "x".repeat(5001) })).rejects.toMatchObject({ code: 422 });
		await expect(progress("00000000-0000-0000-0000-000000000000")).rejects.toMatchObject({ code: 404, type: "ANNOUNCEMENT_NOT_FOUND" });
	});

	/** Replaces a region's sv-notice (cn-east's: the fan-out of cn-east's users runs there). */
	const restartIn = async (region: string, schema: ServiceSchema) => {
		const broker = cluster.nodes[region]!.broker;
		await broker.destroyService(broker.getLocalService("sv-notice") as Service);
		await broker.createService(schema)._start();
	};

	it("reaches every region once after the node that recorded it died before sending it: the announcement and its messages commit together", async () => {
		// ap-south's sv-notice with its outbox relay stopped: what a node killed just after the announcement's commit leaves behind.
		await restartIn("ap-south", {
			mixins: [svNotice],
			async started(this: { relay: { stop(): Promise<void> } }) {
				await this.relay.stop();
			}
		} as unknown as ServiceSchema);
		const regions = ["cn-east", "eu-central"];
		const { id } = await call<{ id: string }>("ap-south", "sv-notice.announce", { title: "Outboxed", body: "Sent by the relay that runs", regions });
		// Ten rounds of a running relay (EDGEHOME_NOTICE_RELAY_MS is 50 here): nothing left the outbox.
		await sleep(500);
		const none = { targeted: 0, written: 0, pushed: 0, failed: 0, done: false, failures: [] };
		expect((await progress(id)).regions).toEqual({ "cn-east": none, "eu-central": none });
		await restartIn("ap-south", svNotice);
		const p = await settled(id, regions);
		for (const region of regions) {
			const users = await usersIn(region);
			expect(p.regions[region]).toEqual({ targeted: users.length, written: users.length, pushed: users.length, failed: 0, done: true, failures: [] });
			const entries = await entriesIn(region, id);
			expect(entries.map(e => e.user_id).sort()).toEqual(users.sort());
			expect(entries.every(e => Number(e.n) === 1)).toBe(true);
		}
	});

	describe("a send of the fan-out that fails", () => {
		/** Sends to each user, by the user's place in cn-east's id order. */
		const attempts = new Map<string, number>();
		let order: string[];
		/** sv-notice whose send fails, before it runs, as `failure(user, attempt)` says. */
		const failing = (failure: (user: number, attempt: number) => Error | undefined) => {
			const send = svNotice.actions!.send as { handler: (ctx: Context<{ userId: string; category: string }>) => unknown };
			return {
				mixins: [svNotice],
				actions: {
					send: {
						...send,
						handler(this: Service, ctx: Context<{ userId: string; category: string }>) {
							if (ctx.params.category === "announcement") {
								const n = (attempts.get(ctx.params.userId) ?? 0) + 1;
								attempts.set(ctx.params.userId, n);
								const err = failure(order.indexOf(ctx.params.userId), n);
								if (err) throw err;
							}
							return send.handler.call(this, ctx);
						}
					}
				}
			} as unknown as ServiceSchema;
		};
		const announceIn = async (region: string) => {
			attempts.clear();
			order = (await usersIn(region)).sort();
			const { id } = await call<{ id: string }>("ap-south", "sv-notice.announce", { title: "Retried", body: "Again", regions: [region] });
			return { id, progress: (await settled(id, [region])).regions[region]! };
		};

		afterAll(() => restartIn("cn-east", svNotice));

		it("is tried again with back-off until it passes: every user written once, none failed", async () => {
			// Users 0-2 fail their first two attempts (of three) as a store that is down would.
			await restartIn(
				"cn-east",
				failing((user, attempt) => (user < 3 && attempt < 3 ? new Errors.MoleculerServerError("store down", 503, "STORE_DOWN") : undefined))
			);
			const { id, progress } = await announceIn("cn-east");
			expect(progress).toEqual({ targeted: order.length, written: order.length, pushed: order.length, failed: 0, done: true, failures: [] });
			expect(order.slice(0, 4).map(u => attempts.get(u))).toEqual([3, 3, 3, 1]);
			const entries = await entriesIn("cn-east", id);
			expect(entries).toHaveLength(order.length);
			expect(entries.every(e => Number(e.n) === 1)).toBe(true);
		});

		it("still failing after the limit, counts as failed with its reason in the progress; a refusal that waiting cannot heal is not retried", async () => {
			await restartIn(
				"cn-east",
				failing(user =>
					user < 2
						? new Errors.MoleculerServerError(`store down for user #${user}`, 503, "STORE_DOWN")
						: user === 2
							? new Errors.MoleculerClientError("no such user", 404, "USER_NOT_FOUND")
							: undefined
				)
			);
			const { id, progress } = await announceIn("cn-east");
			expect(progress).toEqual({
				targeted: order.length,
				written: order.length - 3,
				pushed: order.length - 3,
				failed: 3,
				done: true,
				failures: [
					{ type: "STORE_DOWN", message: expect.stringMatching(/^store down for user #[01]$/), users: 2 },
					{ type: "USER_NOT_FOUND", message: "no such user", users: 1 }
				]
			});
			expect(order.slice(0, 4).map(u => attempts.get(u))).toEqual([3, 3, 1, 1]);
			expect((await entriesIn("cn-east", id)).map(e => e.user_id).sort()).toEqual(order.slice(3));
		});
	});

	it("resumes after sv-notice dies mid-announcement to 5,000 users: each user exactly one entry", async () => {
		await addUsers("eu-central", 5000 - (await usersIn("eu-central")).length);
		const restart = (schema: ServiceSchema) => restartIn("eu-central", schema);
		// Dies in its tenth page, half of it sent: the cursor not moved and its hold on the run not given back, as after kill -9.
		let pages = 0;
		await restart({
			mixins: [svNotice],
			methods: {
				async notifyPage(this: any, a: unknown, users: string[]) {
					if (++pages < 10) return svNotice.methods!.notifyPage!.call(this, a, users);
					await svNotice.methods!.notifyPage!.call(this, a, users.slice(0, users.length / 2));
					throw new Error("died");
				}
			}
		} as unknown as ServiceSchema);
		const { id } = await call<{ id: string }>("cn-east", "sv-notice.announce", { title: "Big news", body: "For all 5,000 of you", regions: ["eu-central"] });
		await within(() => pages >= 10, 30_000);
		const runs = cluster.nodes["eu-central"]!.stores.sql.db.selectFrom("notice_announcement_runs").selectAll().where("id", "=", id);
		const atDeath = (await runs.executeTakeFirstOrThrow()) as { written: number; done: number };
		const entriesAtDeath = (await entriesIn("eu-central", id)).length;
		await restart(svNotice);
		const p = await settled(id, ["eu-central"]);
		const entries = await entriesIn("eu-central", id);
		const duplicates = entries.filter(e => Number(e.n) !== 1).length;
		console.log(
			`announcement to 5,000: died at ${atDeath.written} counted (${entriesAtDeath} entries written), after restart ${JSON.stringify(p.regions["eu-central"])}, ` +
				`users with an entry ${entries.length}, with more than one ${duplicates}`
		);
		expect({ written: Number(atDeath.written), done: Number(atDeath.done), entries: entriesAtDeath }).toEqual({ written: 900, done: 0, entries: 950 });
		expect(p.regions["eu-central"]).toEqual({ targeted: 5000, written: 5000, pushed: 5000, failed: 0, done: true, failures: [] });
		expect(entries).toHaveLength(5000);
		expect(duplicates).toBe(0);
	}, 90_000);
});
