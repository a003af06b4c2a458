import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import authRbac from "../../../services/auth-rbac/auth-rbac.service.ts";
import { migrations } from "../../../services/auth-rbac/migrations.ts";
import type { Rule } from "../../../services/auth-rbac/model.ts";
import { defaultRules, grantRule, permissionRule } from "../../../services/auth-rbac/model.ts";
import { SqlPolicyAdapter } from "../../../services/auth-rbac/policy-adapter.ts";
import type { StartedServices } from "../../harness/embedded.ts";
import { startServices } from "../../harness/embedded.ts";
import { cleanupRealStores, realStores, runId } from "../../harness/real-servers.ts";
import { within } from "../../harness/waiting.ts";

const run = runId();
const stores = realStores(run, "cn-east");
const namespace = `t${run}-rbac`;
const nodes: StartedServices[] = [];
let node1: StartedServices;
let node2: StartedServices;
/** A node of another namespace on the same database: nothing it broadcasts reaches nodes 1 and 2. */
let outsider: StartedServices;

const call = <T = any>(node: StartedServices, action: string, params: unknown = {}) =>
	node.broker.call<T, unknown>(action, params, { nodeID: node.broker.nodeID });
const allowed = async (node: StartedServices, userId: string, resource: string, action: string) =>
	(await call<{ allowed: boolean }>(node, "auth-rbac.enforce", { userId, resource, action })).allowed;
const newUserId = () => Array.from(randomBytes(26), b => "0123456789abcdefghijklmnopqrstuvwxyz"[b % 36]).join("");

beforeAll(async () => {
	// One after the other: the first applies the migrations, the others find them applied.
	for (const n of [1, 2]) nodes.push(await startServices([authRbac], { stores, broker: { namespace, nodeID: `rbac-${n}-${run}`, transporter: "Fake" } }));
	nodes.push(await startServices([authRbac], { stores, broker: { namespace: `${namespace}-other`, nodeID: `rbac-outsider-${run}` } }));
	[node1, node2, outsider] = nodes as [StartedServices, StartedServices, StartedServices];
	// Each of nodes 1 and 2 must know the other before a broadcast can reach it.
	await within(
		async () => [node1, node2].every(n => n.broker.registry.getServiceList({ onlyAvailable: true }).filter(s => s.name === "auth-rbac").length === 2),
		5000
	);
});

afterAll(async () => {
	for (const n of nodes) await n.stop();
	await cleanupRealStores(stores);
});

describe("auth-rbac on MariaDB, two nodes of one region sharing the database", () => {
	it("migrates the database once, with the default roles", async () => {
		expect(node1.stores.sql.dialect).toBe("mysql");
		const rows = await node1.stores.sql.db.selectFrom("rbac_rules").select(["ptype", "v0", "v1", "v2"]).execute();
		expect(rows.map(r => `${r.ptype},${r.v0},${r.v1},${r.v2}`).sort()).toEqual(
			defaultRules()
				.map(r => `${r.ptype},${r.v0},${r.v1},${r.v2}`)
				.sort()
		);
		const applied = await node1.stores.sql.db.selectFrom("migrations_auth_rbac").select("name").execute();
		expect(applied.map(r => r.name)).toEqual(Object.keys(migrations));
	});

	it("enforces on node 2 a grant written on node 1 within a second, and its revocation too", async () => {
		const user = newUserId();
		expect(await allowed(node2, user, "users", "read")).toBe(false);
		await call(node1, "auth-rbac.grant", { userId: user, role: "support" });
		expect(await within(() => allowed(node2, user, "users", "read"), 1000)).toBeLessThan(1000);
		await call(node2, "auth-rbac.revoke", { userId: user, role: "support" });
		expect(await within(async () => !(await allowed(node1, user, "users", "read")), 1000)).toBeLessThan(1000);
	});

	it("converges within a second on a change no event announced, by polling the version", async () => {
		const user = newUserId();
		for (const n of [node1, node2]) expect(await allowed(n, user, "moves", "write")).toBe(false);
		await call(outsider, "auth-rbac.grant", { userId: user, role: "ops" });
		const { version } = await call<{ version: number }>(outsider, "auth-rbac.stats");
		for (const n of [node1, node2]) {
			expect(await within(() => allowed(n, user, "moves", "write"), 1000)).toBeLessThan(1000);
			expect(await call(n, "auth-rbac.stats")).toMatchObject({ version });
		}
	});

	it("loads 10 000 rules and enforces them, cached and uncached", async () => {
		const rules: Rule[] = [];
		for (let r = 0; r < 1000; r++) for (let i = 0; i < 10; i++) rules.push(permissionRule(`team-${r}`, `doc.${r}.${i}`, "read"));
		const user = newUserId();
		rules.push(grantRule(user, "team-500"));
		const change = await new SqlPolicyAdapter(outsider.stores.sql.db).add(rules);
		const written = performance.now();
		expect(change.rows).toBe(10_001);
		// Written behind their backs: found by the version poll and loaded whole, within the second.
		await Promise.all([node1, node2].map(n => within(async () => (await call<{ version: number }>(n, "auth-rbac.stats")).version === change.version, 1000)));
		expect(performance.now() - written).toBeLessThan(1000);
		const stored = await node1.stores.sql.db
			.selectFrom("rbac_rules")
			.select(eb => eb.fn.countAll().as("n"))
			.executeTakeFirstOrThrow();
		expect(Number(stored.n)).toBeGreaterThan(10_000 + defaultRules().length);
		for (const n of [node1, node2]) expect((await call<{ rules: number }>(n, "auth-rbac.stats")).rules).toBe(Number(stored.n));

		expect(await allowed(node1, user, "doc.500.7", "read")).toBe(true);
		expect(await allowed(node1, user, "doc.500.7", "write")).toBe(false);
		expect(await allowed(node1, user, "doc.501.7", "read")).toBe(false);
		expect(await allowed(node1, newUserId(), "doc.500.7", "read")).toBe(false);
		expect(await allowed(node2, user, "profile", "read")).toBe(true);
		const roles = await call<{ roles: { role: string }[] }>(node2, "auth-rbac.roles");
		expect(roles.roles).toHaveLength(1000 + 4);

		const before = await call<{ cache: { hits: number; misses: number } }>(node1, "auth-rbac.stats");
		// 100 different questions, then the same 100 again.
		for (let round = 0; round < 2; round++) for (let i = 0; i < 100; i++) await allowed(node1, user, `doc.${i}.${i % 10}`, "read");
		const after = await call<{ cache: { hits: number; misses: number } }>(node1, "auth-rbac.stats");
		expect(after.cache.misses - before.cache.misses).toBe(100);
		expect(after.cache.hits - before.cache.hits).toBe(100);
	});
});
