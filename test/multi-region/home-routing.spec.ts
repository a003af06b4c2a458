import { randomBytes } from "node:crypto";
import type { Kysely } from "kysely";
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import type { RowDataPacket } from "mysql2/promise";
import { createConnection } from "mysql2/promise";
import { connect } from "nats";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { RegionNode } from "../../app/node.ts";
import { startRegionNode } from "../../app/node.ts";
import type { DbVars } from "../../mixins/db.mixin.ts";
import { dbMixin } from "../../mixins/db.mixin.ts";
import type { HomeEntry } from "../../regions/directory/entries.ts";
import { userKey } from "../../regions/directory/entries.ts";
import { openNatsKvDirectory } from "../../regions/directory/nats-kv-store.ts";
import type { DirectoryStore } from "../../regions/directory/store.ts";
import type { HomeMeta } from "../../regions/home-router.ts";
import { findRegion, loadRegions } from "../../regions/loader.ts";
import { whileDirectoryUnavailable } from "../harness/directory-retry.ts";
import type { EdgeTopology } from "../harness/edge-topology.ts";
import { startEdgeTopology } from "../harness/edge-topology.ts";
import { cleanupRealStores, realStores, runId } from "../harness/real-servers.ts";
import { timed } from "../harness/waiting.ts";

const CN_EAST = "cn-east";
const REGIONS = [CN_EAST, "ap-south", "eu-central"];
const OTHERS = REGIONS.filter(r => r !== CN_EAST);
/** A country each region serves, so that registration homes one user in every region. */
const COUNTRY: Record<string, string> = { "cn-east": "JP", "ap-south": "SG", "eu-central": "DE" };
const DIRECTORY_TIMEOUT_MS = 2000;

interface NotesTables {
	notes: { user_id: string; text: string; region: string };
}

interface Served {
	servedBy: string;
	route: HomeMeta | undefined;
}

interface Listed extends Served {
	notes: { text: string; region: string }[];
}

interface Registered extends HomeEntry {
	userId: string;
}

/** A per-user service: every row is tagged with the region that wrote it, every answer with the region that served it. */
const notesSchema: ServiceSchema<ServiceSettingSchema, Record<string, never>, DbVars<NotesTables>> = {
	name: "notes",
	mixins: [
		dbMixin<NotesTables>({
			"0001_notes": {
				async up(db: Kysely<any>) {
					await db.schema
						.createTable("notes")
						.addColumn("user_id", "varchar(26)", c => c.notNull())
						.addColumn("text", "varchar(200)", c => c.notNull())
						.addColumn("region", "varchar(20)", c => c.notNull())
						.execute();
				}
			}
		})
	],
	actions: {
		add: {
			home: "userId",
			params: { $$strict: true, userId: "string", text: { type: "string", max: 200 } },
			async handler(ctx: Context<{ userId: string; text: string }, { $home?: HomeMeta }>): Promise<Served> {
				const region: string = this.broker.metadata.region;
				await this.db.insertInto("notes").values({ user_id: ctx.params.userId, text: ctx.params.text, region }).execute();
				return { servedBy: region, route: ctx.meta.$home };
			}
		},
		list: {
			home: { param: "userId", readonly: true },
			params: { $$strict: true, userId: "string" },
			async handler(ctx: Context<{ userId: string }, { $home?: HomeMeta }>): Promise<Listed> {
				const notes = await this.db.selectFrom("notes").select(["text", "region"]).where("user_id", "=", ctx.params.userId).execute();
				return { servedBy: this.broker.metadata.region, route: ctx.meta.$home, notes };
			}
		}
	}
};

/** Mirrors and change feeds trail the origin: poll, within a bound. */
function eventually<T>(read: () => Promise<T> | T, timeout = 15_000) {
	return expect.poll(read, { timeout, interval: 100 });
}

describe("home routing on three regions' edge servers and the hub, with real MariaDB per region", () => {
	const run = runId();
	const regions = loadRegions();
	const blindIndexKey = randomBytes(32);
	let cluster: EdgeTopology | undefined;
	const stores: Record<string, DirectoryStore> = {};
	const nodes: Record<string, RegionNode> = {};
	/** Registered users by the region they were first homed in. */
	const users: Record<string, string> = {};
	/** Where each user lives now, as the tests moved them. */
	const homes: Record<string, string> = {};

	const call = <T>(region: string, action: string, params: unknown) => nodes[region]!.broker.call<T, unknown>(action, params);

	beforeAll(async () => {
		cluster = await startEdgeTopology(REGIONS);
		for (const region of REGIONS)
			stores[region] = await openNatsKvDirectory({
				servers: cluster!.urls[region]!,
				bucket: `homes-${run}`,
				...cluster!.placement(region),
				timeoutMs: DIRECTORY_TIMEOUT_MS,
				name: `home-routing-${region}`
			});
		const started = await Promise.allSettled(
			REGIONS.map(async region => {
				nodes[region] = await startRegionNode({
					region: findRegion(regions, region),
					regions,
					transport: "nats",
					services: ["sv-region"],
					schemas: [notesSchema],
					stores: realStores(run, region),
					directory: { store: stores[region]!, blindIndexKey },
					env: {
						EDGEHOME_NATS_URL: cluster!.urls[region],
						EDGEHOME_NAMESPACE_PREFIX: `hr-${run}-`,
						EDGEHOME_METRICS_PORT: "off",
						// No action here is cached; the Redis cacher would only add connections.
						EDGEHOME_CACHER: "off"
					},
					overrides: { logger: false }
				});
			})
		);
		const failed = started.find(s => s.status === "rejected");
		if (failed) throw failed.reason;
	});

	afterAll(async () => {
		try {
			// Also when a test failed mid-outage: a node stops within seconds without its server.
			await Promise.allSettled(Object.values(nodes).map(n => n.stop()));
			await Promise.allSettled(Object.values(stores).map(s => s.close()));
			await Promise.all(REGIONS.map(region => cleanupRealStores(realStores(run, region))));
		} finally {
			await cluster?.stop();
		}
	});

	it("homes each registered user by country, and every region's node finds every user once its mirror has caught up", async () => {
		for (const region of REGIONS) {
			const res = await call<Registered>("ap-south", "sv-region.register", {
				identities: [{ kind: "username", value: `${region}-user-${run}` }],
				country: COUNTRY[region]
			});
			expect(res).toMatchObject({ region, epoch: 1, state: "active" });
			users[region] = res.userId;
			homes[res.userId] = region;
		}
		for (const node of REGIONS)
			for (const region of REGIONS) {
				const userId = users[region]!;
				await eventually(() => call<Registered>(node, "sv-region.lookup", { userId }).catch(err => err)).toMatchObject({
					userId,
					region,
					epoch: 1
				});
			}
	});

	it("writes and reads every user's notes in its home region only, whichever region the call entered", async () => {
		for (const from of REGIONS)
			for (const home of REGIONS) {
				const res = await call<Served>(from, "notes.add", { userId: users[home], text: `via ${from}` });
				expect(res).toEqual({ servedBy: home, route: { epoch: 1, originRegion: from, hops: from === home ? 0 : 1 } });
			}
		for (const from of REGIONS)
			for (const home of REGIONS) {
				const res = await call<Listed>(from, "notes.list", { userId: users[home] });
				expect(res.servedBy).toBe(home);
				expect(res.notes.map(n => n.region)).toEqual([home, home, home]);
				expect(res.notes.map(n => n.text).sort()).toEqual(REGIONS.map(r => `via ${r}`).sort());
			}
		// What each region's database holds, read past the services.
		for (const region of REGIONS) {
			const conn = await createConnection({ uri: realStores(run, region).sql });
			try {
				const [rows] = await conn.query<RowDataPacket[]>("select user_id, region from notes");
				for (const home of REGIONS)
					expect(
						rows.filter(r => r.user_id === users[home]),
						`${home}'s rows in ${region}'s database`
					).toHaveLength(region === home ? 3 : 0);
				expect(rows.every(r => r.region === region)).toBe(true);
			} finally {
				await conn.end();
			}
		}
	});

	it("heals a caller whose cache still names the old home with one directory re-read, and serves the call in the new home", async () => {
		const userId = users["ap-south"]!;
		const to = "eu-central";
		const caller = nodes[CN_EAST]!;
		const entry = (await caller.directory.entry(userId))!;
		const old = entry.value;
		const moved: HomeEntry = { ...old, region: to, epoch: old.epoch + 1 };
		// Only the routing is under test: the user's rows stay where they are.
		const revision = await caller.directory.store.update(userKey(userId), moved, entry.revision);
		homes[userId] = to;
		// Every node must know of the move, so that the entry forced below is the only stale view;
		// a node that does not cache the user reads its (caught-up) mirror.
		for (const node of Object.values(nodes)) {
			await eventually(async () => (await node.directory.entry(userId))?.revision).toBe(revision);
			await eventually(() => node.directory.cache.get(userId)?.epoch ?? moved.epoch).toBe(moved.epoch);
		}
		caller.directory.cache.set(userId, old);
		const refresh = vi.spyOn(caller.directory, "refresh");
		try {
			const res = await call<Listed>(CN_EAST, "notes.list", { userId });
			// Second hop at the new epoch: the old home refused, the caller re-read the directory once.
			expect(res).toEqual({ servedBy: to, route: { epoch: moved.epoch, originRegion: CN_EAST, hops: 2 }, notes: [] });
			expect(refresh).toHaveBeenCalledTimes(1);
		} finally {
			refresh.mockRestore();
		}
		expect(caller.directory.cache.get(userId)).toEqual(moved);
	});

	it("keeps lookups and other regions' users served while cn-east is down and the hub has no quorum, refuses registration fast, and registers again once it is back", async () => {
		// cn-east's site (edge and hub server) and a second hub server, the bucket's leader if cn-east's is not: one of
		// three is left, a follower. (A leader left alone would keep a refused write and commit it once a peer is back:
		// directory-mirror.spec.ts covers that case.)
		const nc = await connect({ servers: cluster!.urls["ap-south"]! });
		const leader = await (await nc.jetstreamManager({ domain: "hub" })).streams.info(`KV_homes-${run}`).finally(() => nc.close());
		const second = OTHERS.find(r => leader.cluster?.leader === `hub-${r}`) ?? "ap-south";
		const edgeMoved = OTHERS.find(r => r !== second)!;
		await cluster!.kill(CN_EAST);
		await cluster!.killHub(second);
		// The edge of `second` lost its hub server and dialed the one left: its link to the other region comes back within seconds.
		await eventually(() => nodes[second]!.health.status(edgeMoved)).toBe("up");
		await eventually(() => nodes[edgeMoved]!.health.status(second)).toBe("up");
		const identity = (region: string) => ({ kind: "username", value: `during-outage-${region}-${run}` });

		for (const region of OTHERS) {
			// Answers must come from the region's mirror, not from what the node had cached.
			nodes[region]!.directory.cache.clear();
			for (const userId of Object.keys(homes)) {
				const lookup = await timed(call<Registered>(region, "sv-region.lookup", { userId }));
				expect(lookup.result).toMatchObject({ userId, region: homes[userId] });
				expect(lookup.ms).toBeLessThan(DIRECTORY_TIMEOUT_MS);
				if (homes[userId] !== CN_EAST) expect(await call<Listed>(region, "notes.list", { userId })).toMatchObject({ servedBy: homes[userId] });
			}
			const register = await timed(call<Registered>(region, "sv-region.register", { identities: [identity(region)], country: "DE" }));
			expect(register.result).toMatchObject({ type: "DIRECTORY_UNAVAILABLE", code: 503 });
			expect(register.ms).toBeLessThan(3000);
		}

		await cluster!.restartHub(second);
		await cluster!.restart(CN_EAST);

		for (const region of OTHERS) {
			// The same identity again: a reservation left behind by the failed attempt would make it IDENTITY_TAKEN.
			const res = await whileDirectoryUnavailable(
				() => call<Registered>(region, "sv-region.register", { identities: [identity(region)], country: "DE" }),
				20_000
			);
			expect(res).toMatchObject({ region: "eu-central", epoch: 1, pinned: true });
			for (const reader of OTHERS)
				await eventually(() => call<Registered>(reader, "sv-region.lookup", { userId: res.userId }).catch(err => err)).toMatchObject({
					userId: res.userId,
					region: "eu-central"
				});
		}
	}, 50_000);
});
