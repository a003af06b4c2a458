import type { ServiceSchema } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../../app/node.ts";
import { startRegionNode } from "../../../app/node.ts";
import { moveParticipantMixin } from "../../../mixins/move-participant.mixin.ts";
import { userKey } from "../../../regions/directory/entries.ts";
import type { DirectoryEntry } from "../../../regions/directory/store.ts";
import { loadRegions } from "../../../regions/loader.ts";
import { moveKey } from "../../../regions/rehoming.ts";
import type { EmbeddedRegions } from "../../harness/embedded-regions.ts";
import { startEmbeddedRegions } from "../../harness/embedded-regions.ts";
import { within } from "../../harness/waiting.ts";

let node: RegionNode;
const call = <T = any>(action: string, params: unknown) => node.broker.call<T, unknown>(`sv-region.${action}`, params);

/** Everything in the directory, to prove a refused call wrote nothing. */
async function snapshot(): Promise<string[]> {
	const all: DirectoryEntry[] = [];
	for (let after = 0; ; ) {
		const page = await node.directory.store.list("", { afterRevision: after, limit: 1000 });
		all.push(...page.entries);
		if (page.next === null) break;
		after = page.next;
	}
	return all.map(e => `${e.key}=${JSON.stringify(e.value)}`).sort();
}

beforeAll(async () => {
	node = await startRegionNode({
		region: loadRegions().find(r => r.id === "ap-south")!,
		transport: "embedded",
		services: ["sv-region"],
		stores: { sql: "sqlite::memory:", keyPrefix: "svr:" },
		env: { EDGEHOME_NAMESPACE_PREFIX: "svregion-", EDGEHOME_METRICS_PORT: "off" },
		overrides: { logger: false }
	});
});
afterAll(() => node.stop());

describe("sv-region", () => {
	it("registers a user in the region of its country and finds it by every identity", async () => {
		const res = await call("register", {
			identities: [
				{ kind: "username", value: "ann" },
				{ kind: "email", value: "Ann@Example.com" }
			],
			country: "JP"
		});
		expect(res).toMatchObject({ region: "cn-east", epoch: 1, state: "active", pinned: false });
		expect(res.userId).toMatch(/^[0-9a-z]{26}$/);
		expect(await call("resolve", { kind: "email", value: "ann@example.com" })).toEqual({ userId: res.userId });
		expect(await call("resolve", { kind: "username", value: "ANN" })).toEqual({ userId: res.userId });
		expect(await call("lookup", { userId: res.userId })).toMatchObject({ userId: res.userId, region: "cn-east", epoch: 1 });
	});

	it("pins a residency country and keeps a country-less user in the receiving region", async () => {
		expect(await call("register", { identities: [{ kind: "username", value: "dieter" }], country: "DE" })).toMatchObject({
			region: "eu-central",
			pinned: true
		});
		expect(await call("register", { identities: [{ kind: "username", value: "nomad" }] })).toMatchObject({ region: "ap-south", pinned: false });
	});

	it("never stores an e-mail or phone in clear text", async () => {
		await call("register", {
			identities: [
				{ kind: "username", value: "carol" },
				{ kind: "email", value: "carol@example.org" },
				{ kind: "phone", value: "+6591234567" }
			]
		});
		const all = (await snapshot()).join("\n");
		expect(all).not.toContain("carol@example.org");
		expect(all).not.toContain("6591234567");
		expect(all).not.toContain("carol");
	});

	it("refuses a taken identity with IDENTITY_TAKEN and leaves no reservation behind", async () => {
		const before = await snapshot();
		await expect(
			call("register", {
				identities: [
					{ kind: "username", value: "fresh-name" },
					{ kind: "email", value: "ann@example.com" }
				]
			})
		).rejects.toMatchObject({ code: 409, type: "IDENTITY_TAKEN", data: { kind: "email" } });
		expect(await snapshot()).toEqual(before);
		await expect(call("resolve", { kind: "username", value: "fresh-name" })).rejects.toMatchObject({ code: 404 });
	});

	it("gives one of two racing registrations the name, and the loser no leftovers", async () => {
		const results = await Promise.allSettled([
			call("register", {
				identities: [
					{ kind: "username", value: "racer" },
					{ kind: "email", value: "r1@example.com" }
				]
			}),
			call("register", {
				identities: [
					{ kind: "username", value: "racer" },
					{ kind: "email", value: "r2@example.com" }
				]
			})
		]);
		expect(results.filter(r => r.status === "fulfilled")).toHaveLength(1);
		const loser = results.findIndex(r => r.status === "rejected");
		await expect(call("resolve", { kind: "email", value: `r${loser + 1}@example.com` })).rejects.toMatchObject({ code: 404 });
	});

	it("releases a registration with unregister, only for the identities that are the user's", async () => {
		const a = await call("register", { identities: [{ kind: "username", value: "temp" }] });
		await call("unregister", {
			userId: a.userId,
			identities: [
				{ kind: "username", value: "temp" },
				{ kind: "username", value: "ann" }
			]
		});
		await expect(call("resolve", { kind: "username", value: "temp" })).rejects.toMatchObject({ code: 404 });
		await expect(call("lookup", { userId: a.userId })).rejects.toMatchObject({ type: "USER_NOT_FOUND" });
		await expect(call("resolve", { kind: "username", value: "ann" })).resolves.toHaveProperty("userId");
	});

	it("answers the region registry and its cache statistics", async () => {
		expect((await call("regions", {})).map((r: { id: string }) => r.id).sort()).toEqual(["ap-south", "cn-east", "eu-central"]);
		const stats = await call("stats", {});
		expect(stats).toMatchObject({ region: "ap-south", cache: { max: 100_000 } });
		expect(stats.lookups).toBeGreaterThan(0);
	});

	describe("bad input is refused and writes nothing", () => {
		const cases: [string, string, Record<string, unknown>][] = [
			["extra fields", "register", { identities: [{ kind: "username", value: "x1" }], region: "cn-east" }],
			["an extra field inside an identity", "register", { identities: [{ kind: "username", value: "x2", userId: "0".repeat(26) }] }],
			["no identity", "register", { identities: [] }],
			["an unknown identity kind", "register", { identities: [{ kind: "passport", value: "x" }] }],
			["an identity over 320 characters", "register", { identities: [{ kind: "email", value: `${"a".repeat(320)}@x.y` }] }],
			["a lower-case country", "register", { identities: [{ kind: "username", value: "x3" }], country: "jp" }],
			["a malformed user id", "lookup", { userId: "../../etc" }]
		];
		for (const [name, action, params] of cases)
			it(`refuses ${name}`, async () => {
				const before = await snapshot();
				await expect(call(action, params)).rejects.toMatchObject({ code: 422, type: "VALIDATION_ERROR" });
				expect(await snapshot()).toEqual(before);
			});

		it("refuses the same identity kind twice", async () => {
			const before = await snapshot();
			await expect(
				call("register", {
					identities: [
						{ kind: "username", value: "d1" },
						{ kind: "username", value: "d2" }
					]
				})
			).rejects.toMatchObject({ code: 422 });
			expect(await snapshot()).toEqual(before);
		});
	});

	it("keeps the user entry in the directory under user.<id>", async () => {
		const { userId } = await call("register", { identities: [{ kind: "username", value: "keyed" }] });
		expect((await node.directory.store.get(userKey(userId)))?.value).toMatchObject({ region: "ap-south", epoch: 1 });
	});
});

/** A move participant without rows whose import fails for the users listed here. */
const refusing = new Set<string>();
const picky: ServiceSchema = {
	name: "picky",
	mixins: [moveParticipantMixin()],
	methods: {
		async moveExport() {
			return [];
		},
		async moveImport(id: string) {
			if (refusing.has(id)) throw new Error("import refused");
		},
		async moveCount() {
			return 0;
		},
		async moveDelete() {
			return 0;
		}
	}
};

/** A move participant whose export for the users listed here never answers (its reply lost), bounded at STALL_BOUND_MS. */
const STALL_BOUND_MS = 600;
const stalling = new Set<string>();
const lossy: ServiceSchema = {
	name: "lossy",
	mixins: [moveParticipantMixin({ copyTimeoutMs: STALL_BOUND_MS })],
	methods: {
		async moveExport(id: string) {
			if (stalling.has(id)) await new Promise(() => undefined);
			return [];
		},
		async moveImport() {},
		async moveCount() {
			return 0;
		},
		async moveDelete() {
			return 0;
		}
	}
};

describe("sv-region moves in the background (embedded, three regions)", () => {
	let cluster: EmbeddedRegions | undefined;
	const at = <T = any>(region: string, action: string, params: unknown) => cluster!.nodes[region]!.broker.call<T, unknown>(`sv-region.${action}`, params);
	const register = async (username: string, country: string) =>
		(await at("cn-east", "register", { identities: [{ kind: "username", value: username }], country })).userId as string;
	const moveRecords = async () => (await cluster!.store.list("moves.", { limit: 1000 })).entries.length;
	const progressUntilEnded = async (region: string, id: string) => {
		let last: any;
		await within(async () => (last = await at(region, "moveProgress", { moveId: id })).state !== "running", 10_000);
		return last;
	};

	beforeAll(async () => {
		cluster = await startEmbeddedRegions({ namespacePrefix: "svregion-moves-", services: ["sv-region"], schemas: [picky, lossy] });
		// A mover needs to see both regions' nodes: wait until every node reaches every region.
		const nodes = Object.values(cluster.nodes);
		await within(() => nodes.every(n => nodes.every(m => n.health.status(m.region.id) === "up")), 10_000);
	});
	afterAll(() => cluster?.stop());

	it("answers startMove at once with the move running, and its progress from any node of any region until moved", async () => {
		const id = await register("bg-mover", "SG");
		const started = Date.now();
		const res = await at("cn-east", "startMove", { userId: id, to: "eu-central" });
		expect(Date.now() - started).toBeLessThan(400);
		expect(res).toEqual({ moveId: expect.stringMatching(/^[0-9a-f-]{36}$/), userId: id, from: "ap-south", to: "eu-central", state: "running" });
		expect(await at("eu-central", "moveProgress", { moveId: res.moveId })).toMatchObject({
			...res,
			state: "running",
			step: "moving",
			startedAt: expect.any(Number)
		});
		const ended = await progressUntilEnded("ap-south", res.moveId);
		expect(ended).toEqual({ ...res, state: "moved", startedAt: expect.any(Number), finishedAt: expect.any(Number) });
		expect(ended.finishedAt).toBeGreaterThanOrEqual(ended.startedAt);
		expect(await at("ap-south", "lookup", { userId: id })).toMatchObject({ region: "eu-central", epoch: 2, state: "active" });
		// The journal is gone; the record still answers.
		expect(await cluster!.store.get(moveKey(id))).toBeUndefined();
		expect(await at("cn-east", "moveProgress", { moveId: res.moveId })).toEqual(ended);
	});

	it("refuses synchronously, recording nothing: residency, unknown region or user, a move in progress", async () => {
		const pinned = await register("bg-pinned", "DE");
		const busy = await register("bg-busy", "KR");
		const before = await moveRecords();
		await expect(at("ap-south", "startMove", { userId: pinned, to: "cn-east" })).rejects.toMatchObject({
			code: 403,
			type: "RESIDENCY_VIOLATION",
			data: { from: "eu-central", to: "cn-east" }
		});
		await expect(at("ap-south", "startMove", { userId: busy, to: "mars-north" })).rejects.toMatchObject({ code: 422, type: "UNKNOWN_REGION" });
		await expect(at("ap-south", "startMove", { userId: "0".repeat(26), to: "cn-east" })).rejects.toMatchObject({ code: 404, type: "USER_NOT_FOUND" });
		expect(await moveRecords()).toBe(before);
		const first = await at("ap-south", "startMove", { userId: busy, to: "ap-south" });
		await expect(at("eu-central", "startMove", { userId: busy, to: "eu-central" })).rejects.toMatchObject({ code: 409, type: "MOVE_IN_PROGRESS" });
		expect(await moveRecords()).toBe(before + 1);
		expect(await progressUntilEnded("cn-east", first.moveId)).toMatchObject({ state: "moved" });
		expect(await at("cn-east", "lookup", { userId: pinned })).toMatchObject({ region: "eu-central", state: "active" });
	});

	it("reports a move that failed and was undone as rolled-back, with its cause", async () => {
		const id = await register("bg-refused", "SG");
		refusing.add(id);
		const res = await at("eu-central", "startMove", { userId: id, to: "cn-east" });
		const ended = await progressUntilEnded("cn-east", res.moveId);
		expect(ended).toMatchObject({
			state: "rolled-back",
			from: "ap-south",
			to: "cn-east",
			error: expect.stringContaining("import refused"),
			finishedAt: expect.any(Number)
		});
		expect(await at("cn-east", "lookup", { userId: id })).toMatchObject({ region: "ap-south", epoch: 1, state: "active" });
	});

	it("fails a move whose participant's export never answers after that participant's own bound, and rolls it back", async () => {
		const id = await register("bg-lost-reply", "SG");
		stalling.add(id);
		const res = await at("cn-east", "startMove", { userId: id, to: "eu-central" });
		const ended = await progressUntilEnded("ap-south", res.moveId);
		expect(ended).toMatchObject({ state: "rolled-back", error: expect.stringMatching(/lossy\.move\.export.*timed out|timed out.*lossy\.move\.export/) });
		// The bound is the participant's (600 ms), not a mover's guess of minutes.
		expect(ended.finishedAt - ended.startedAt).toBeLessThan(5000);
		expect(await at("cn-east", "lookup", { userId: id })).toMatchObject({ region: "ap-south", epoch: 1, state: "active" });
	});

	it("remembers a move made with the waiting `move` too, and a move to where the user already lives", async () => {
		const id = await register("bg-sync", "KR");
		const moved = await at("ap-south", "move", { userId: id, to: "ap-south" });
		expect(await at("eu-central", "moveProgress", { moveId: moved.moveId })).toMatchObject({ userId: id, from: "cn-east", to: "ap-south", state: "moved" });
		const noop = await at("ap-south", "startMove", { userId: id, to: "ap-south" });
		expect(noop).toMatchObject({ from: "ap-south", to: "ap-south", state: "moved" });
		expect(await at("cn-east", "moveProgress", { moveId: noop.moveId })).toMatchObject({ state: "moved", finishedAt: expect.any(Number) });
	});

	it("answers MOVE_NOT_FOUND for an unknown move id and VALIDATION_ERROR for a malformed one", async () => {
		await expect(at("eu-central", "moveProgress", { moveId: "00000000-0000-4000-8000-000000000000" })).rejects.toMatchObject({
			code: 404,
			type: "MOVE_NOT_FOUND"
		});
		await expect(at("eu-central", "moveProgress", { moveId: "moves.x" })).rejects.toMatchObject({ code: 422, type: "VALIDATION_ERROR" });
	});

	it("forgets ended moves once they are older than the retention", async () => {
		const id = await register("bg-pruned", "SG");
		const { moveId } = await at("cn-east", "move", { userId: id, to: "cn-east" });
		const service = cluster!.nodes["cn-east"]!.broker.getLocalService("sv-region") as unknown as { pruneMoves(endedBefore: number): Promise<number> };
		expect(await service.pruneMoves(Date.now() - 60_000)).toBe(0);
		expect(await service.pruneMoves(Date.now() + 1)).toBeGreaterThanOrEqual(1);
		await expect(at("eu-central", "moveProgress", { moveId })).rejects.toMatchObject({ code: 404, type: "MOVE_NOT_FOUND" });
	});
});
