import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../../../app/node.ts";
import authRbac from "../../../../services/auth-rbac/auth-rbac.service.ts";
import { DEFAULT_ROLES, defaultRules } from "../../../../services/auth-rbac/model.ts";
import { startServices } from "../../../harness/embedded.ts";
import type { EmbeddedRegions } from "../../../harness/embedded-regions.ts";
import { REGION_IDS as ids, startEmbeddedRegions } from "../../../harness/embedded-regions.ts";

const nodes: Record<string, RegionNode> = {};
let cluster: EmbeddedRegions | undefined;
const call = <T = any>(from: string, action: string, params: unknown = {}) => nodes[from]!.broker.call<T, unknown>(action, params);
const allowed = async (from: string, userId: string, resource: string, action: string) =>
	(await call<{ allowed: boolean }>(from, "auth-rbac.enforce", { userId, resource, action })).allowed;

/** Every stored rule in each region's own database, as "ptype,v0,v1,v2", sorted. */
async function rulesByRegion(): Promise<Record<string, string[]>> {
	const out: Record<string, string[]> = {};
	for (const id of ids) {
		const rows = await nodes[id]!.stores.sql.db.selectFrom("rbac_rules").select(["ptype", "v0", "v1", "v2"]).execute();
		out[id] = rows.map(r => `${r.ptype},${r.v0},${r.v1},${r.v2}`).sort();
	}
	return out;
}

async function grantsByRegion(userId: string): Promise<Record<string, string[]>> {
	const all = await rulesByRegion();
	return Object.fromEntries(ids.map(id => [id, all[id]!.filter(r => r.startsWith(`g,${userId},`))]));
}

/** Retries `check` until it passes or `ms` have gone by. */
async function eventually(check: () => Promise<void>, ms = 2000): Promise<void> {
	const deadline = Date.now() + ms;
	for (;;) {
		try {
			return await check();
		} catch (err) {
			if (Date.now() > deadline) throw err;
			await new Promise(r => setTimeout(r, 20));
		}
	}
}

let seq = 0;
async function register(country: string): Promise<{ id: string; region: string }> {
	return call("cn-east", "sv-user.register", { username: `rbac-user-${++seq}`, password: "rbac test pass 1", country });
}

beforeAll(async () => {
	cluster = await startEmbeddedRegions({ namespacePrefix: "rbac-", services: ["sv-region", "sv-user", "auth-rbac"] });
	Object.assign(nodes, cluster.nodes);
});

afterAll(() => cluster?.stop());

describe("auth-rbac", () => {
	it("starts every region with the default roles: user, support, ops, admin", async () => {
		const expected = DEFAULT_ROLES.map(r => ({
			role: r.role,
			inherits: r.inherits,
			permissions: [...r.permissions].sort((a, b) => a.resource.localeCompare(b.resource) || a.action.localeCompare(b.action))
		}));
		for (const from of ids) {
			const { roles } = await call<{ roles: { role: string }[] }>(from, "auth-rbac.roles");
			expect(roles.map(r => r.role)).toEqual(["admin", "ops", "support", "user"]);
			expect(roles).toEqual(expect.arrayContaining(expected));
		}
		const rules = await rulesByRegion();
		expect(rules["ap-south"]).toEqual(rules["cn-east"]);
		expect(rules["eu-central"]).toEqual(rules["cn-east"]);
	});

	it("lets an ordinary user read and update their profile but not list users, with no rule stored for them", async () => {
		const user = await register("JP");
		for (const from of ids) {
			expect(await allowed(from, user.id, "profile", "read")).toBe(true);
			expect(await allowed(from, user.id, "profile", "update")).toBe(true);
			expect(await allowed(from, user.id, "users", "read")).toBe(false);
			expect(await call(from, "auth-rbac.rolesOf", { userId: user.id })).toEqual({ userId: user.id, roles: ["user"], direct: [] });
		}
		expect(await grantsByRegion(user.id)).toEqual({ "cn-east": [], "ap-south": [], "eu-central": [] });
	});

	it("grants a role from another region's node: allowed at once everywhere, the grant stored only at home", async () => {
		const user = await register("DE");
		expect(user.region).toBe("eu-central");
		expect(await allowed("ap-south", user.id, "users", "read")).toBe(false);
		expect(await call("cn-east", "auth-rbac.grant", { userId: user.id, role: "support" })).toEqual({ userId: user.id, role: "support", changed: true });
		for (const from of ids) {
			expect(await allowed(from, user.id, "users", "read")).toBe(true);
			expect(await allowed(from, user.id, "users", "move")).toBe(false);
			expect(await call(from, "auth-rbac.rolesOf", { userId: user.id })).toEqual({ userId: user.id, roles: ["support", "user"], direct: ["support"] });
		}
		expect(await grantsByRegion(user.id)).toEqual({ "cn-east": [], "ap-south": [], "eu-central": [`g,${user.id},support,`] });
		// Again, and the implicit role: both succeed and store nothing.
		expect(await call("ap-south", "auth-rbac.grant", { userId: user.id, role: "support" })).toMatchObject({ changed: false });
		expect(await call("ap-south", "auth-rbac.grant", { userId: user.id, role: "user" })).toMatchObject({ changed: false });
		expect(await grantsByRegion(user.id)).toEqual({ "cn-east": [], "ap-south": [], "eu-central": [`g,${user.id},support,`] });
	});

	it("gives an admin everything ops and support may, and takes it away on revoke", async () => {
		const user = await register("SG");
		await call("eu-central", "auth-rbac.grant", { userId: user.id, role: "admin" });
		for (const [resource, action] of [
			["roles", "write"],
			["users", "move"],
			["moves", "write"],
			["users", "read"],
			["profile", "read"]
		] as const)
			expect(await allowed("cn-east", user.id, resource, action)).toBe(true);
		expect(await call("cn-east", "auth-rbac.rolesOf", { userId: user.id })).toEqual({
			userId: user.id,
			roles: ["admin", "ops", "support", "user"],
			direct: ["admin"]
		});
		const admin = await call<{ inherits: string[]; permissions: unknown[] }>("ap-south", "auth-rbac.permissionsOf", { role: "admin" });
		expect(admin.inherits).toEqual(["ops", "support", "user"]);
		expect(admin.permissions).toEqual(
			expect.arrayContaining([
				{ resource: "roles", action: "write", inheritedFrom: null },
				{ resource: "users", action: "move", inheritedFrom: "ops" },
				{ resource: "users", action: "read", inheritedFrom: "support" },
				{ resource: "profile", action: "read", inheritedFrom: "user" }
			])
		);
		expect(admin.permissions).toHaveLength(DEFAULT_ROLES.reduce((n, r) => n + r.permissions.length, 0));

		expect(await call("cn-east", "auth-rbac.revoke", { userId: user.id, role: "admin" })).toMatchObject({ changed: true });
		for (const from of ids) {
			expect(await allowed(from, user.id, "users", "move")).toBe(false);
			expect(await allowed(from, user.id, "users", "read")).toBe(false);
			expect(await allowed(from, user.id, "profile", "read")).toBe(true);
		}
		expect(await call("eu-central", "auth-rbac.revoke", { userId: user.id, role: "admin" })).toMatchObject({ changed: false });
		expect(await grantsByRegion(user.id)).toEqual({ "cn-east": [], "ap-south": [], "eu-central": [] });
	});

	it("refuses an unknown role with ROLE_NOT_FOUND and the implicit role's revocation with ROLE_IMPLICIT, storing nothing", async () => {
		const user = await register("JP");
		const before = await rulesByRegion();
		await expect(call("ap-south", "auth-rbac.grant", { userId: user.id, role: "superuser" })).rejects.toMatchObject({
			code: 404,
			type: "ROLE_NOT_FOUND",
			data: { role: "superuser" }
		});
		await expect(call("ap-south", "auth-rbac.revoke", { userId: user.id, role: "superuser" })).rejects.toMatchObject({ code: 404, type: "ROLE_NOT_FOUND" });
		await expect(call("ap-south", "auth-rbac.permissionsOf", { role: "superuser" })).rejects.toMatchObject({ code: 404, type: "ROLE_NOT_FOUND" });
		await expect(call("eu-central", "auth-rbac.revoke", { userId: user.id, role: "user" })).rejects.toMatchObject({ code: 400, type: "ROLE_IMPLICIT" });
		expect(await rulesByRegion()).toEqual(before);
		expect(await allowed("eu-central", user.id, "profile", "read")).toBe(true);
	});

	describe("bad input is refused with VALIDATION_ERROR and stores nothing", () => {
		// A registered user: home routing answers USER_NOT_FOUND for an unknown one before validation runs.
		let uid = "";
		beforeAll(async () => {
			uid = (await register("JP")).id;
		});
		const cases: [string, string, (uid: string) => Record<string, unknown>][] = [
			["an upper-case role", "grant", uid => ({ userId: uid, role: "Admin" })],
			["a one-letter role", "grant", uid => ({ userId: uid, role: "a" })],
			["a 33-character role", "grant", uid => ({ userId: uid, role: "r".repeat(33) })],
			["a role shaped like a user id", "addPermission", () => ({ role: "a".repeat(26), resource: "profile", action: "read" })],
			["an extra field on grant", "grant", uid => ({ userId: uid, role: "support", region: "cn-east" })],
			["an extra field on enforce", "enforce", uid => ({ userId: uid, resource: "users", action: "read", as: "admin" })],
			["a resource with a comma", "addPermission", () => ({ role: "support", resource: "users,roles", action: "read" })],
			["a 65-character resource", "addPermission", () => ({ role: "support", resource: "r".repeat(65), action: "read" })],
			["an action of two stars", "addPermission", () => ({ role: "support", resource: "users", action: "**" })],
			["a missing action", "removePermission", () => ({ role: "support", resource: "users" })]
		];
		for (const [name, action, params] of cases)
			it(`refuses ${name}`, async () => {
				const before = await rulesByRegion();
				await expect(call("cn-east", `auth-rbac.${action}`, params(uid))).rejects.toMatchObject({ code: 422, type: "VALIDATION_ERROR" });
				expect(await rulesByRegion()).toEqual(before);
			});
	});

	it("makes a permission added in one region, and its removal in another, visible in every region", async () => {
		const user = await register("DE");
		await call("eu-central", "auth-rbac.grant", { userId: user.id, role: "support" });
		const ticketsRead = { resource: "tickets", action: "read", inheritedFrom: null };
		expect(await call("ap-south", "auth-rbac.addPermission", { role: "support", resource: "tickets", action: "read" })).toMatchObject({ changed: true });
		for (const from of ids)
			await eventually(async () => {
				expect((await call(from, "auth-rbac.permissionsOf", { role: "support" })).permissions).toContainEqual(ticketsRead);
			});
		// The user's home (eu-central) applied the change relayed from ap-south.
		expect(await allowed("cn-east", user.id, "tickets", "read")).toBe(true);
		const added = await rulesByRegion();
		expect(added["cn-east"]).toContain("p,support,tickets,read");
		expect(added["eu-central"]!.filter(r => r.startsWith("p,"))).toEqual(added["cn-east"]!.filter(r => r.startsWith("p,")));
		expect(added["ap-south"]!.filter(r => r.startsWith("p,"))).toEqual(added["cn-east"]!.filter(r => r.startsWith("p,")));

		await call("cn-east", "auth-rbac.removePermission", { role: "support", resource: "tickets", action: "read" });
		for (const from of ids)
			await eventually(async () => {
				expect((await call(from, "auth-rbac.permissionsOf", { role: "support" })).permissions).not.toContainEqual(ticketsRead);
			});
		expect(await allowed("ap-south", user.id, "tickets", "read")).toBe(false);
		for (const rules of Object.values(await rulesByRegion())) expect(rules).not.toContain("p,support,tickets,read");
	});

	it("answers repeated decisions from the home node's cache and drops them on a change", async () => {
		const user = await register("SG");
		const stats = () => call<{ version: number; cache: { size: number; hits: number; misses: number } }>(user.region, "auth-rbac.stats");
		const before = await stats();
		for (let i = 0; i < 5; i++) expect(await allowed("cn-east", user.id, "users", "read")).toBe(false);
		const cached = await stats();
		expect(cached.cache.hits - before.cache.hits).toBe(4);
		expect(cached.cache.misses - before.cache.misses).toBe(1);
		expect(cached.cache.size).toBeGreaterThan(0);

		await call("eu-central", "auth-rbac.grant", { userId: user.id, role: "support" });
		const after = await stats();
		expect(after.version).toBeGreaterThan(cached.version);
		expect(after.cache.size).toBe(0);
		expect(await allowed("cn-east", user.id, "users", "read")).toBe(true);
	});

	it("moves a user's grants with the user when rehomed", async () => {
		const user = await register("SG");
		expect(user.region).toBe("ap-south");
		await call("eu-central", "auth-rbac.grant", { userId: user.id, role: "ops" });
		await call("eu-central", "sv-region.move", { userId: user.id, to: "cn-east" });
		expect(await grantsByRegion(user.id)).toEqual({ "cn-east": [`g,${user.id},ops,`], "ap-south": [], "eu-central": [] });
		for (const from of ids) {
			expect(await allowed(from, user.id, "users", "move")).toBe(true);
			expect(await call(from, "auth-rbac.rolesOf", { userId: user.id })).toEqual({ userId: user.id, roles: ["ops", "support", "user"], direct: ["ops"] });
		}
	});
});

describe("auth-rbac on a plain broker", () => {
	it("decides without caching when decisionCacheSize is 0", async () => {
		const started = await startServices([{ ...authRbac, settings: { decisionCacheSize: 0 } }]);
		try {
			const userId = "0".repeat(26);
			for (let i = 0; i < 3; i++)
				expect(await started.broker.call("auth-rbac.enforce", { userId, resource: "profile", action: "read" })).toEqual({ allowed: true });
			expect(await started.broker.call("auth-rbac.stats")).toMatchObject({ rules: defaultRules().length, cache: { size: 0, hits: 0, misses: 3 } });
		} finally {
			await started.stop();
		}
	});
});
