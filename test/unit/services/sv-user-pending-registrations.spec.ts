import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../../app/node.ts";
import { piiKeysFromEnv } from "../../../kernel/sealing.ts";
import type { HomeEntry, IdentityEntry } from "../../../regions/directory/entries.ts";
import type { SweepCounts } from "../../../services/sv-user/pending-registrations.ts";
import { PENDING_TABLE, pendingRow } from "../../../services/sv-user/pending-registrations.ts";
import type { EmbeddedRegions } from "../../harness/embedded-regions.ts";
import { REGION_IDS, startEmbeddedRegions } from "../../harness/embedded-regions.ts";
import type { LateCommits } from "../../harness/late-commits.ts";
import { lateCommits } from "../../harness/late-commits.ts";
import type { UnreachableOrigin } from "../../harness/unreachable-origin.ts";
import { unreachableOrigin } from "../../harness/unreachable-origin.ts";
import { failureOf, within } from "../../harness/waiting.ts";

const GRACE_MS = 1000;
const SWEEP_MS = 200;
/** When a registration whose answer was lost must be undone: the grace, a jittered sweep interval, and slack for a busy machine. */
const BOUND_MS = GRACE_MS + 1.5 * SWEEP_MS + 2000;

const nodes: Record<string, RegionNode> = {};
const origins: Record<string, UnreachableOrigin> = {};
let faults: LateCommits | undefined;
let cluster: EmbeddedRegions | undefined;
const at = (region: string) => nodes[region]!.broker;
const figures: Record<string, number> = {};

beforeAll(async () => {
	// Read by sv-user when it is created: sweep fast, after a short grace.
	process.env.EDGEHOME_REGISTRATION_GRACE_MS = String(GRACE_MS);
	process.env.EDGEHOME_REGISTRATION_SWEEP_MS = String(SWEEP_MS);
	cluster = await startEmbeddedRegions({
		namespacePrefix: "svpending-",
		services: ["sv-region", "sv-user"],
		viewOf: (id, store) => {
			faults ??= lateCommits(store);
			origins[id] = unreachableOrigin(faults);
			return origins[id];
		}
	});
	Object.assign(nodes, cluster.nodes);
});

afterAll(async () => {
	await cluster?.stop();
	console.log(JSON.stringify({ pendingRegistrations: figures }));
});

const sweepCounts = (region = "cn-east") => ({ ...(at(region).getLocalService("sv-user") as unknown as { sweepCounts: SweepCounts }).sweepCounts });
const journal = (region = "cn-east") => nodes[region]!.stores.sql.db.selectFrom(PENDING_TABLE).selectAll().execute();

/** Every identity key, and the user entry, that the directory holds for `userId`. */
async function directoryOf(userId: string) {
	const page = await cluster!.store.list<IdentityEntry>("identity.", { limit: 1000 });
	const identities = page.entries.filter(e => e.value.userId === userId).map(e => e.key.split(".")[1]);
	const entry = await cluster!.store.get<HomeEntry>(`user.${userId}`);
	return { identities, entry: entry?.value };
}

const resolve = async (kind: string, value: string) => (await at("ap-south").call<{ userId: string }, unknown>("sv-region.resolve", { kind, value })).userId;

describe("sv-user registrations whose directory answer was lost", () => {
	it("undoes a username reservation that committed after it timed out; the same username then registers", async () => {
		faults!.commitThenTimeout("create", "identity.username.");
		const lost = await failureOf(at("cn-east").call("sv-user.register", { username: "olga", password: "long enough 1", email: "olga@example.org" }));
		expect(lost).toMatchObject({ type: "DIRECTORY_UNAVAILABLE", code: 503 });
		const orphan = await resolve("username", "olga");
		expect(await directoryOf(orphan)).toEqual({ identities: ["username"], entry: undefined });
		// Until the sweeper has run, a retry finds the username taken (the documented window).
		expect(await failureOf(at("cn-east").call("sv-user.register", { username: "olga", password: "long enough 1" }))).toMatchObject({
			type: "USERNAME_TAKEN"
		});

		let again: { id: string } | undefined;
		figures.retryAfterMs = await within(async () => {
			again = await at("cn-east")
				.call<{ id: string }, unknown>("sv-user.register", { username: "olga", password: "long enough 1", email: "olga@example.org" })
				.catch(() => undefined);
			return again !== undefined;
		}, BOUND_MS);
		expect(again!.id).not.toBe(orphan);
		expect(await directoryOf(orphan)).toEqual({ identities: [], entry: undefined });
		expect(await resolve("email", "olga@example.org")).toBe(again!.id);
		expect((await journal()).map(r => r.user_id)).not.toContain(orphan);
		expect(await journal()).toEqual([]);
	});

	it("undoes a user entry of another region that committed late, with identities whose release failed", async () => {
		faults!.commitThenTimeout("create", "user.");
		faults!.refuse("delete", "identity.", 2);
		const before = faults!.injected.refused;
		const params = { username: "sven", password: "long enough 2", email: "sven@example.se", country: "SE" };
		expect(await failureOf(at("cn-east").call("sv-user.register", params))).toMatchObject({ type: "DIRECTORY_UNAVAILABLE", code: 503 });
		expect(faults!.injected.refused - before).toBe(2);
		const orphan = await resolve("username", "sven");
		const left = await directoryOf(orphan);
		expect(left.identities.sort()).toEqual(["email", "username"]);
		expect(left.entry).toMatchObject({ region: "eu-central" });
		expect(await failureOf(at("eu-central").call("sv-user.get", { userId: orphan }))).toMatchObject({ type: "USER_NOT_FOUND" });

		const undoneBefore = sweepCounts().undone;
		figures.userEntryUndoneMs = await within(async () => (await directoryOf(orphan)).entry === undefined && (await journal()).length === 0, BOUND_MS);
		expect(await directoryOf(orphan)).toEqual({ identities: [], entry: undefined });
		expect(sweepCounts().undone - undoneBefore).toBe(1);
		const res = await at("cn-east").call<{ id: string; region: string }, unknown>("sv-user.register", params);
		expect(res.region).toBe("eu-central");
		expect(await at("cn-east").call("sv-user.checkPassword", { login: "sven@example.se", password: "long enough 2" })).toEqual({ userId: res.id });
	});

	it("never sweeps a user who got a profile: the journal row is only dropped", async () => {
		const user = await at("cn-east").call<{ id: string }, unknown>("sv-user.register", {
			username: "kept",
			password: "long enough 3",
			email: "kept@example.de",
			country: "DE"
		});
		expect(await journal()).toEqual([]);
		// A registration that wrote its profile but lost its row's delete (a crash in between, say).
		const pii = piiKeysFromEnv(process.env, "test");
		const identities = [
			{ kind: "username" as const, value: "kept" },
			{ kind: "email" as const, value: "kept@example.de" }
		];
		await nodes["cn-east"]!.stores.sql.db.insertInto(PENDING_TABLE)
			.values(pendingRow(pii, user.id, identities, Date.now() - GRACE_MS))
			.execute();
		const before = sweepCounts();
		await within(async () => (await journal()).length === 0, BOUND_MS);
		const after = sweepCounts();
		expect(after.finished - before.finished).toBe(1);
		expect(after.undone - before.undone).toBe(0);
		expect((await directoryOf(user.id)).identities.sort()).toEqual(["email", "username"]);
		expect(await at("ap-south").call("sv-user.get", { userId: user.id })).toMatchObject({ username: "kept", email: "kept@example.de" });
	});

	it("answers a taken e-mail DIRECTORY_UNAVAILABLE when giving back the username failed, and sweeps it", async () => {
		await at("cn-east").call("sv-user.register", { username: "first", password: "long enough 5", email: "shared@example.org" });
		faults!.refuse("delete", "identity.username.");
		const params = { username: "second", password: "long enough 5", email: "shared@example.org" };
		// EMAIL_TAKEN would promise that nothing was kept: here "second" may still be reserved.
		expect(await failureOf(at("cn-east").call("sv-user.register", params))).toMatchObject({ type: "DIRECTORY_UNAVAILABLE" });
		const orphan = await resolve("username", "second");
		expect((await journal()).map(r => r.user_id)).toEqual([orphan]);
		await within(async () => (await journal()).length === 0, BOUND_MS);
		expect(await directoryOf(orphan)).toEqual({ identities: [], entry: undefined });
		// A refusal that kept nothing leaves no journal row behind.
		expect(await failureOf(at("cn-east").call("sv-user.register", params))).toMatchObject({ type: "EMAIL_TAKEN", code: 409 });
		expect(await journal()).toEqual([]);
		expect(await at("cn-east").call("sv-user.register", { ...params, email: "second@example.org" })).toMatchObject({ username: "second" });
	});

	it("unregisters idempotently, only the named user's identities, and never an entry that changed since it was read", async () => {
		const identities = [
			{ kind: "username", value: "undo-me" },
			{ kind: "email", value: "shared@example.org" }
		];
		const { userId } = await at("ap-south").call<{ userId: string }, unknown>("sv-region.register", { identities: identities.slice(0, 1) });
		const { revision } = (await at("ap-south").call<{ revision: number }, unknown>("sv-region.locate", { userId }))!;
		// "shared@example.org" is the user "first"'s: it must stay theirs.
		const holder = await resolve("email", "shared@example.org");
		expect(holder).not.toBe(userId);
		expect(await failureOf(at("ap-south").call("sv-region.unregister", { userId, identities, revision: revision + 1 }))).toMatchObject({
			type: "REVISION_MISMATCH",
			code: 409
		});
		expect((await directoryOf(userId)).identities).toEqual(["username"]);
		expect(await at("ap-south").call("sv-region.unregister", { userId, identities, revision })).toEqual({ userId, removed: true });
		expect(await at("ap-south").call("sv-region.unregister", { userId, identities, revision })).toEqual({ userId, removed: false });
		expect(await directoryOf(userId)).toEqual({ identities: [], entry: undefined });
		expect(await at("ap-south").call("sv-region.locate", { userId })).toBeNull();
		expect(await resolve("email", "shared@example.org")).toBe(holder);
	});

	it("does nothing while the directory's origin is unreachable, and finishes once it answers", async () => {
		faults!.commitThenTimeout("create", "identity.username.");
		expect(await failureOf(at("cn-east").call("sv-user.register", { username: "ulla", password: "long enough 4", phone: "+46701234567" }))).toMatchObject({
			type: "DIRECTORY_UNAVAILABLE"
		});
		const orphan = await resolve("username", "ulla");
		for (const id of REGION_IDS) origins[id]!.cut();
		const cutAt = sweepCounts();
		// Well past the grace: every sweep meanwhile must leave the row and the reservation as they are.
		await new Promise(r => setTimeout(r, GRACE_MS + 5 * SWEEP_MS));
		const whileCut = sweepCounts();
		expect(whileCut.rounds - cutAt.rounds).toBeGreaterThanOrEqual(3);
		expect(whileCut.deferred - cutAt.deferred).toBeGreaterThanOrEqual(1);
		expect(whileCut.undone).toBe(cutAt.undone);
		expect((await journal()).map(r => r.user_id)).toEqual([orphan]);
		expect(await directoryOf(orphan)).toEqual({ identities: ["username"], entry: undefined });

		for (const id of REGION_IDS) origins[id]!.reach();
		figures.afterReachMs = await within(async () => (await journal()).length === 0, BOUND_MS);
		expect(await directoryOf(orphan)).toEqual({ identities: [], entry: undefined });
		expect(sweepCounts().undone - whileCut.undone).toBe(1);
		await at("cn-east").call("sv-user.register", { username: "ulla", password: "long enough 4", phone: "+46701234567" });
		Object.assign(figures, sweepCounts(), { deferredWhileCut: whileCut.deferred - cutAt.deferred, injected: faults!.injected.committed });
	});
});
