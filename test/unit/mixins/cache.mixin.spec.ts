import type { Context, ServiceSchema } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../../app/node.ts";
import type { CachingService } from "../../../mixins/cache.mixin.ts";
import { cacheMixin } from "../../../mixins/cache.mixin.ts";
import { USERS_CHANGED } from "../../../regions/user-changes.ts";
import type { EmbeddedRegions } from "../../harness/embedded-regions.ts";
import { everyRegionLinked, startEmbeddedRegions } from "../../harness/embedded-regions.ts";
import { notesService } from "../../harness/notes.service.ts";
import { within } from "../../harness/waiting.ts";

/** A caller of users' reads, as a gateway is: it caches them where they are asked. */
const readerService: ServiceSchema = {
	name: "reader",
	mixins: [cacheMixin],
	actions: {
		notes: {
			params: { $$strict: true, userId: "string" },
			handler(ctx: Context<{ userId: string }>) {
				return (this as unknown as CachingService)
					.cachedCall<unknown[]>(ctx, "notes.list", { userId: ctx.params.userId }, ctx.params.userId)
					.then(rows => rows.length);
			}
		}
	}
};

const nodes: Record<string, RegionNode> = {};
let cluster: EmbeddedRegions | undefined;
let seq = 0;
const call = <T = any>(from: string, action: string, params: unknown) => nodes[from]!.broker.call<T, unknown>(action, params);
const readerIn = (region: string) => nodes[region]!.broker.getLocalService("reader") as unknown as CachingService;
const register = async (country: string) =>
	(await call("eu-central", "sv-region.register", { identities: [{ kind: "username", value: `cache-${++seq}` }], country })).userId as string;

beforeAll(async () => {
	// Entries outlive the tests: only an invalidation can make a cached read see a write.
	process.env.EDGEHOME_CACHE_TTL_MS = "60000";
	cluster = await startEmbeddedRegions({ namespacePrefix: "cache-", services: ["sv-region"], schemas: [notesService, readerService] });
	Object.assign(nodes, cluster.nodes);
	await everyRegionLinked(cluster, 20_000);
});

afterAll(() => cluster?.stop());

describe("the cache mixin: users' reads cached where they are asked", () => {
	it("answers a read again from the cache, and drops it when the user writes in another region", async () => {
		const userId = await register("DE");
		await call("eu-central", "notes.add", { userId, text: "one" });
		const reader = readerIn("cn-east").userReads;
		expect(await call("cn-east", "reader.notes", { userId })).toBe(1);
		const hits = reader.hits;
		expect(await call("cn-east", "reader.notes", { userId })).toBe(1);
		expect(reader.hits).toBe(hits + 1);
		// Written through a third region: the home region tells every region's caches.
		await call("ap-south", "notes.add", { userId, text: "two" });
		const ms = await within(async () => (await call("cn-east", "reader.notes", { userId })) === 2, 1000);
		console.log(`a cached read in cn-east saw a write made through ap-south after ${ms} ms`);
	});

	it("shows a caller in the home region its own write on the next read, without waiting", async () => {
		const userId = await register("DE");
		expect(await call("eu-central", "reader.notes", { userId })).toBe(0);
		for (let i = 1; i <= 5; i++) {
			await call("eu-central", "notes.add", { userId, text: `n${i}` });
			expect(await call("eu-central", "reader.notes", { userId })).toBe(i);
		}
	});

	it("drops a user's entries when the user moves", async () => {
		const userId = await register("IN");
		await call("ap-south", "notes.add", { userId, text: "before" });
		expect(await call("cn-east", "reader.notes", { userId })).toBe(1);
		const heard = readerIn("cn-east").userReads.invalidations;
		await call("ap-south", "sv-region.move", { userId, to: "eu-central" });
		await within(async () => readerIn("cn-east").userReads.invalidations > heard, 2000);
		const misses = readerIn("cn-east").userReads.misses;
		expect(await call("cn-east", "reader.notes", { userId })).toBe(1);
		expect(readerIn("cn-east").userReads.misses).toBe(misses + 1);
	});

	it("refuses a users-changed message out of bounds and keeps its entries", async () => {
		const userId = await register("CN");
		await call("cn-east", "reader.notes", { userId });
		const before = readerIn("cn-east").userReads.invalidations;
		await nodes["cn-east"]!.broker.broadcast(USERS_CHANGED, { users: Array.from({ length: 1001 }, () => userId) });
		await nodes["cn-east"]!.broker.broadcast(USERS_CHANGED, { users: [userId], extra: true });
		await new Promise(r => setTimeout(r, 50));
		expect(readerIn("cn-east").userReads.invalidations).toBe(before);
	});
});
