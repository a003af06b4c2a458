import { randomBytes, randomUUID } from "node:crypto";
import type { Context, ServiceSchema } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../../app/node.ts";
import { startRegionNode } from "../../../app/node.ts";
import type { HomeEntry } from "../../../regions/directory/entries.ts";
import { userKey } from "../../../regions/directory/entries.ts";
import type { DirectoryStore } from "../../../regions/directory/store.ts";
import { loadRegions } from "../../../regions/loader.ts";
import { regionRuntimeOf } from "../../../regions/runtime/region-runtime.ts";
import type { EmbeddedRegions } from "../../harness/embedded-regions.ts";
import { REGION_IDS as ids, startEmbeddedRegions } from "../../harness/embedded-regions.ts";
import type { StalledDirectory } from "../../harness/stalled-directory.ts";
import { stalledDirectory } from "../../harness/stalled-directory.ts";
import { within } from "../../harness/waiting.ts";

/** A per-user actor: where it ran, and a write counter kept in the node's memory. */
const handled: { event: string; region: string; userId: string }[] = [];
const profile: ServiceSchema = {
	name: "profile",
	actions: {
		where: {
			home: { param: "userId", readonly: true },
			params: { userId: "string" },
			handler(ctx: Context<{ userId: string }>) {
				return { region: this.broker.metadata.region, nodeID: this.broker.nodeID, meta: (ctx.meta as { $home?: unknown }).$home };
			}
		},
		touch: {
			home: "userId",
			params: { userId: "string" },
			handler(ctx: Context<{ userId: string }>) {
				ctx.emit("profile.touched", { userId: ctx.params.userId });
				return { region: this.broker.metadata.region };
			}
		}
	},
	events: {
		"profile.touched": {
			home: "userId",
			handler(ctx: Context<{ userId: string }>) {
				handled.push({ event: ctx.eventName!, region: this.broker.metadata.region, userId: ctx.params.userId });
			}
		}
	}
};

/** A per-region action: runs in the region its `region` parameter names. */
const regional: ServiceSchema = {
	name: "regional",
	actions: {
		where: {
			home: { region: "filter.region" },
			params: { filter: { type: "object", props: { region: "string" } } },
			handler(ctx: Context<{ filter: { region: string } }>) {
				return { region: this.broker.metadata.region, meta: ctx.meta as { $home?: unknown; tag?: unknown } };
			}
		}
	}
};

const nodes: Record<string, RegionNode> = {};
let store: DirectoryStore;
let cluster: EmbeddedRegions | undefined;
const users: Record<string, string> = {};

beforeAll(async () => {
	cluster = await startEmbeddedRegions({ namespacePrefix: "router-", services: ["sv-region"], schemas: [profile, regional] });
	Object.assign(nodes, cluster.nodes);
	store = cluster.store;
	const countries: Record<string, string> = { "cn-east": "JP", "ap-south": "SG", "eu-central": "DE" };
	for (const id of ids) {
		const res = await nodes["cn-east"]!.broker.call<{ userId: string; region: string }, unknown>("sv-region.register", {
			identities: [{ kind: "username", value: `user-${id}` }],
			country: countries[id]
		});
		expect(res.region).toBe(id);
		users[id] = res.userId;
	}
});

afterAll(() => cluster?.stop());

async function moveBehindTheBack(userId: string, to: string): Promise<HomeEntry> {
	const entry = (await store.get<HomeEntry>(userKey(userId)))!;
	const moved = { ...entry.value, region: to, epoch: entry.value.epoch + 1 };
	await store.update(userKey(userId), moved, entry.revision);
	return entry.value;
}

describe("home routing (embedded, three regions)", () => {
	it("runs every user's call in its home region, whichever region it entered", async () => {
		for (const from of ids)
			for (const home of ids) {
				const res = await nodes[from]!.broker.call<{ region: string; meta: { originRegion: string; hops: number } }, unknown>("profile.where", {
					userId: users[home]
				});
				expect(res.region).toBe(home);
				expect(res.meta).toMatchObject({ originRegion: from, hops: from === home ? 0 : 1, epoch: 1 });
			}
	});

	it("handles an event about a user in the user's home region only", async () => {
		handled.length = 0;
		await nodes["cn-east"]!.broker.emit("profile.touched", { userId: users["eu-central"] });
		await new Promise(r => setTimeout(r, 100));
		expect(handled).toEqual([{ event: "profile.touched", region: "eu-central", userId: users["eu-central"] }]);
	});

	it("heals a stale cache with one retry after WRONG_REGION", async () => {
		const userId = users["ap-south"]!;
		const caller = nodes["cn-east"]!;
		await caller.broker.call("profile.where", { userId });
		const old = await moveBehindTheBack(userId, "eu-central");
		// The caller's feed has not caught up yet: it still believes the old home.
		caller.directory.cache.set(userId, old);
		const res = await caller.broker.call<{ region: string; meta: { epoch: number; hops: number } }, unknown>("profile.where", { userId });
		expect(res.region).toBe("eu-central");
		expect(res.meta).toMatchObject({ epoch: 2, hops: 2 });
		expect(caller.directory.cache.get(userId)).toMatchObject({ region: "eu-central", epoch: 2 });
	});

	it("heals a cache that still places the user in the caller's own region, keeping the caller's meta its own", async () => {
		// A second cn-east node without the profile service: its calls run on the first one.
		const regions = loadRegions();
		const edge = await startRegionNode({
			region: regions.find(r => r.id === "cn-east")!,
			regions,
			transport: "embedded",
			group: "edge",
			services: ["sv-region"],
			stores: { sql: "sqlite::memory:", keyPrefix: "cn-east-edge:" },
			directory: { store, blindIndexKey: randomBytes(32) },
			env: { EDGEHOME_NAMESPACE_PREFIX: "router-", EDGEHOME_METRICS_PORT: "off" },
			overrides: { logger: false }
		});
		try {
			await edge.broker.waitForServices("profile");
			const { userId } = await edge.broker.call<{ userId: string }, unknown>("sv-region.register", {
				identities: [{ kind: "username", value: "user-local-stale" }],
				country: "JP"
			});
			await edge.broker.call("profile.where", { userId });
			const old = await moveBehindTheBack(userId, "eu-central");
			await within(() => nodes["cn-east"]!.directory.cache.peek(userId)?.region === "eu-central", 2000);
			edge.directory.cache.set(userId, old);
			const ctx = edge.broker.ContextFactory.create(edge.broker, null as never, {}, { meta: { user: "dave" } }) as unknown as Context<
				unknown,
				{ user: string }
			>;
			const res = await ctx.call<{ region: string; meta: { epoch: number; hops: number } }, unknown>("profile.where", { userId });
			expect(res).toMatchObject({ region: "eu-central", meta: { epoch: 2, hops: 2 } });
			expect(ctx.meta.user).toBe("dave");
			expect(edge.directory.cache.peek(userId)).toMatchObject({ region: "eu-central", epoch: 2 });
		} finally {
			await edge.stop();
		}
	});

	it("fences a caller whose epoch is older than the directory's", async () => {
		const userId = users["cn-east"]!;
		const home = nodes["cn-east"]!;
		await expect(
			home.broker.call("profile.touch", { userId }, { meta: { $home: { epoch: 0, originRegion: "ap-south", hops: 1 } }, nodeID: home.broker.nodeID })
		).resolves.toMatchObject({ region: "cn-east" });
		// Bypass the caller-side router: deliver straight to the handler with a stale epoch.
		const svc = home.broker.getLocalService("profile")!;
		const action = (svc as unknown as { actions: Record<string, (p: unknown, o: unknown) => Promise<unknown>> }).actions;
		await expect(action.touch!({ userId }, { meta: { $home: { epoch: 0, originRegion: "ap-south", hops: 1 } } })).rejects.toMatchObject({
			type: "WRONG_REGION",
			code: 421,
			data: { region: "cn-east", epoch: 1 }
		});
	});

	it("holds a write for a user whose old home a move froze, then answers USER_MOVING; reads still served", async () => {
		const userId = users["cn-east"]!;
		const moveId = randomUUID();
		const entry = (await store.get<HomeEntry>(userKey(userId)))!;
		await store.update(userKey(userId), { ...entry.value, state: "moving" }, entry.revision);
		await nodes["ap-south"]!.broker.call("sv-region.handover", { region: "cn-east", userId, step: "freeze", epoch: 1, moveId });
		// The freeze reached the old home's own database (the one its writes commit in).
		const ownership = regionRuntimeOf(nodes["cn-east"]!.broker).ownership;
		expect(await ownership.read(ownership.store.db, userId)).toMatchObject({ state: "moving", epoch: 1, moveId });
		const started = Date.now();
		await expect(nodes["ap-south"]!.broker.call("profile.touch", { userId })).rejects.toMatchObject({ type: "USER_MOVING", code: 503 });
		expect(Date.now() - started).toBeGreaterThanOrEqual(900);
		await expect(nodes["ap-south"]!.broker.call("profile.where", { userId })).resolves.toMatchObject({ region: "cn-east" });
		// The move rolls back: the directory first, then the old home thaws.
		const moving = (await store.get<HomeEntry>(userKey(userId)))!;
		setTimeout(() => {
			void store
				.update(userKey(userId), { ...moving.value, state: "active" }, moving.revision)
				.then(() => nodes["ap-south"]!.broker.call("sv-region.handover", { region: "cn-east", userId, step: "thaw", epoch: 1, moveId }));
		}, 300);
		await expect(nodes["ap-south"]!.broker.call("profile.touch", { userId })).resolves.toMatchObject({ region: "cn-east" });
	});

	it("commits a write only where the region's own ownership row says so, whatever the directory claims", async () => {
		const userId = users["ap-south"]!;
		// The first write records the home's ownership from the directory's origin.
		await expect(nodes["cn-east"]!.broker.call("profile.touch", { userId })).resolves.toMatchObject({ region: "eu-central" });
		// Behind the fence's back, the directory alone says moving: the home's row still owns the user, so writes go on.
		const entry = (await store.get<HomeEntry>(userKey(userId)))!;
		const { epoch } = entry.value;
		await store.update(userKey(userId), { ...entry.value, state: "moving" }, entry.revision);
		await expect(nodes["cn-east"]!.broker.call("profile.touch", { userId })).resolves.toMatchObject({ region: "eu-central" });
		// A move freezes the home's row: the user takes no write, even from a node whose cache says active.
		const moveId = randomUUID();
		await nodes["cn-east"]!.broker.call("sv-region.handover", { region: "eu-central", userId, step: "freeze", epoch, moveId });
		const home = nodes["eu-central"]!;
		home.directory.cache.set(userId, { ...entry.value, state: "active" });
		await expect(home.broker.call("profile.touch", { userId })).rejects.toMatchObject({ type: "USER_MOVING" });
		const moving = (await store.get<HomeEntry>(userKey(userId)))!;
		await store.update(userKey(userId), { ...moving.value, state: "active" }, moving.revision);
		await home.broker.call("sv-region.handover", { region: "eu-central", userId, step: "thaw", epoch, moveId });
		await expect(home.broker.call("profile.touch", { userId })).resolves.toMatchObject({ region: "eu-central" });
	});

	it("keeps each caller's meta its own: no other call's context is merged back into it", async () => {
		const broker = nodes["cn-east"]!.broker;
		const ctxOf = (user: string) =>
			broker.ContextFactory.create(broker, null as never, {}, { meta: { user } }) as unknown as Context<unknown, { user: string }>;
		const alice = ctxOf("alice");
		await alice.call("profile.where", { userId: users["cn-east"] });
		// Forwarded, then local: neither may pick up alice's meta.
		const bob = ctxOf("bob");
		await bob.call("profile.where", { userId: users["eu-central"] });
		const carol = ctxOf("carol");
		await carol.call("profile.where", { userId: users["cn-east"] });
		expect([alice.meta.user, bob.meta.user, carol.meta.user]).toEqual(["alice", "bob", "carol"]);
	});

	it("answers USER_NOT_FOUND for a user the directory does not know", async () => {
		await expect(nodes["cn-east"]!.broker.call("profile.where", { userId: "0".repeat(26) })).rejects.toMatchObject({ type: "USER_NOT_FOUND", code: 404 });
	});
});

describe("region routing (embedded, three regions)", () => {
	const where = (from: string, params: unknown, meta?: Record<string, unknown>) =>
		nodes[from]!.broker.call<{ region: string; meta: { $home?: unknown; tag?: unknown } }, unknown>("regional.where", params, meta ? { meta } : undefined);

	it("runs a call in the region its parameter names, whichever region it entered, with the caller's meta", async () => {
		for (const from of ids)
			for (const target of ids) {
				const res = await where(from, { filter: { region: target } }, { tag: `${from}>${target}` });
				expect(res.region).toBe(target);
				expect(res.meta).toMatchObject({ tag: `${from}>${target}` });
				expect(res.meta.$home).toBeUndefined();
			}
	});

	it("answers UNKNOWN_REGION (422) for a region that is not defined, and leaves a missing one to validation", async () => {
		await expect(where("ap-south", { filter: { region: "mars-north" } })).rejects.toMatchObject({
			type: "UNKNOWN_REGION",
			code: 422,
			data: { region: "mars-north" }
		});
		await expect(where("ap-south", { filter: {} })).rejects.toMatchObject({ type: "VALIDATION_ERROR", code: 422 });
	});

	it("checks no ownership or epoch where it runs", async () => {
		const stale = { $home: { epoch: 0, originRegion: "ap-south", hops: 99 } };
		await expect(where("cn-east", { filter: { region: "cn-east" } }, stale)).resolves.toMatchObject({ region: "cn-east" });
		const svc = nodes["cn-east"]!.broker.getLocalService("regional")!;
		const actions = (svc as unknown as { actions: Record<string, (p: unknown, o: unknown) => Promise<unknown>> }).actions;
		await expect(actions.where!({ filter: { region: "cn-east" } }, { meta: stale })).resolves.toMatchObject({ region: "cn-east" });
	});

	// Last: it stops a region.
	it("answers REGION_UNAVAILABLE when the named region is down", async () => {
		await nodes["eu-central"]!.stop();
		delete cluster!.nodes["eu-central"];
		const started = Date.now();
		await expect(where("cn-east", { filter: { region: "eu-central" } })).rejects.toMatchObject({
			type: "REGION_UNAVAILABLE",
			code: 503,
			data: { region: "eu-central" }
		});
		expect(Date.now() - started).toBeLessThan(5000);
		await expect(where("cn-east", { filter: { region: "ap-south" } })).resolves.toMatchObject({ region: "ap-south" });
	});
});

describe("home routing while the caller's directory view lags behind the origin (embedded, three regions)", () => {
	/** ap-south's view of the directory: frozen on demand, like a mirror behind its origin, its origin reads recorded. */
	const LAGGING = "ap-south";
	let view: StalledDirectory;
	const originReads: string[] = [];
	let lagged: EmbeddedRegions | undefined;

	beforeAll(async () => {
		lagged = await startEmbeddedRegions({
			namespacePrefix: "router-lag-",
			services: ["sv-region"],
			schemas: [profile],
			viewOf: (id, shared) => {
				if (id !== LAGGING) return shared;
				view = stalledDirectory(shared);
				return {
					...view,
					get: (key, opts) => {
						if (opts?.authoritative) originReads.push(key);
						return view.get(key, opts);
					}
				};
			}
		});
		await view.stall();
	});

	afterAll(() => lagged?.stop());

	it("routes a user the origin has and the caller's view does not yet to the user's home", async () => {
		const { userId, region } = await lagged!.nodes["cn-east"]!.broker.call<{ userId: string; region: string }, unknown>("sv-region.register", {
			identities: [{ kind: "username", value: "registered-a-moment-ago" }],
			country: "DE"
		});
		expect(region).toBe("eu-central");
		const caller = lagged!.nodes[LAGGING]!;
		expect(await view.get(userKey(userId))).toBeUndefined();
		const res = await caller.broker.call<{ region: string; meta: { originRegion: string; hops: number } }, unknown>("profile.where", { userId });
		expect(res).toMatchObject({ region: "eu-central", meta: { originRegion: LAGGING, hops: 1 } });
		expect(originReads).toContain(userKey(userId));
	});

	it("still answers USER_NOT_FOUND for a user unknown everywhere, after one origin read", async () => {
		const userId = "1".repeat(26);
		const started = Date.now();
		await expect(lagged!.nodes[LAGGING]!.broker.call("profile.where", { userId })).rejects.toMatchObject({ type: "USER_NOT_FOUND", code: 404 });
		expect(originReads.filter(key => key === userKey(userId))).toHaveLength(1);
		expect(Date.now() - started).toBeLessThan(1000);
	});
});
