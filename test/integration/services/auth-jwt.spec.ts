import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { connect } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Tokens } from "../../../services/auth-jwt/auth-jwt.service.ts";
import { IP_LIMIT, RedisLoginThrottle } from "../../../services/auth-jwt/login-throttle.ts";
import { startKvNode } from "../../harness/kv-node.ts";
import type { KvNode } from "../../harness/kv-node.ts";
import { cleanupRealStores, REAL, realStores, runId } from "../../harness/real-servers.ts";
import { failureOf, within } from "../../harness/waiting.ts";

const run = runId();
const bucket = `t-${run}-directory`;
const stores = { "cn-east": realStores(run, "cn-east"), "eu-central": realStores(run, "eu-central") };
/** Two nodes of cn-east sharing its MariaDB and Redis, one node of eu-central. */
const nodes: Record<"a" | "b" | "eu", KvNode> = {} as never;
const broker = (n: keyof typeof nodes) => nodes[n].node.broker;
/** Verified on that very node (verification is local: no hop). */
const verifyOn = (n: keyof typeof nodes, token: string) => broker(n).call<{ sid: string }, unknown>("auth-jwt.verify", { token }, { nodeID: broker(n).nodeID }).then(c => c.sid, e => e.type as string);

const services = ["sv-region", "sv-user", "auth-jwt"];
let greta: { id: string };
let chen: { id: string };

beforeAll(async () => {
	const common = { natsUrl: REAL.nats, bucket, namespacePrefix: `t${run}-`, blindIndexKey: randomBytes(32), services };
	nodes.a = await startKvNode({ ...common, region: "cn-east", group: "a", stores: stores["cn-east"] });
	nodes.b = await startKvNode({ ...common, region: "cn-east", group: "b", stores: stores["cn-east"] });
	nodes.eu = await startKvNode({ ...common, region: "eu-central", stores: stores["eu-central"] });
	await broker("a").waitForServices(["sv-user", "auth-jwt"], 10_000);
	greta = await broker("a").call("sv-user.register", { username: "greta", password: "fjord walk 42", country: "SE" });
	chen = await broker("a").call("sv-user.register", { username: "chen", password: "river walk 42", country: "CN" });
	await broker("a").call("sv-user.register", { username: "ming", password: "temple walk 42", country: "CN" });
	await within(async () => {
		const stats = await Promise.all((["a", "b", "eu"] as const).map(n => broker(n).call<{ current: Record<string, boolean> }, unknown>("auth-jwt.stats", {}, { nodeID: broker(n).nodeID })));
		return stats.every(s => s.current["cn-east"] && s.current["eu-central"]);
	}, 10_000);
});

afterAll(async () => {
	for (const n of Object.values(nodes)) await n.stop().catch(() => undefined);
	for (const s of Object.values(stores)) await cleanupRealStores(s);
	const nc = await connect({ servers: REAL.nats });
	await (await nc.jetstreamManager()).streams.delete(`KV_${bucket}`).catch(() => undefined);
	await nc.close();
});

describe("auth-jwt on real NATS, MariaDB and Redis", () => {
	it("logs in at cn-east a user homed in eu-central: the session lives only in eu-central's database", async () => {
		const t = await broker("a").call<Tokens, unknown>("auth-jwt.login", { login: "greta", password: "fjord walk 42", client: "app" });
		expect(t).toMatchObject({ region: "eu-central", userId: greta.id });
		const inCn = await nodes.a.node.stores.sql.db.selectFrom("auth_sessions").selectAll().execute();
		const inEu = await nodes.eu.node.stores.sql.db.selectFrom("auth_sessions").selectAll().execute();
		expect(nodes.eu.node.stores.sql.dialect).toBe("mysql");
		expect(inCn).toHaveLength(0);
		expect(inEu.map(r => r.sid)).toEqual([t.sid]);
		// Only the hash of the refresh token is stored.
		const tokens = await nodes.eu.node.stores.sql.db.selectFrom("auth_refresh_tokens").selectAll().execute();
		expect(JSON.stringify(tokens)).not.toContain(t.refreshToken.split(".")[1]);
		for (const n of ["a", "b", "eu"] as const) expect(await verifyOn(n, t.accessToken)).toBe(t.sid);
	});

	it("logs out through one node: both cn-east nodes and eu-central reject the token within a second", async () => {
		const t = await broker("b").call<Tokens, unknown>("auth-jwt.login", { login: "chen", password: "river walk 42", client: "www" });
		await broker("eu").call("auth-jwt.logout", { accessToken: t.accessToken });
		const ms = await within(async () => (await Promise.all((["a", "b", "eu"] as const).map(n => verifyOn(n, t.accessToken)))).every(v => v === "SESSION_REVOKED"), 1000);
		expect(ms).toBeLessThan(1000);
		expect(chen.id).toMatch(/^[0-9a-z]{26}$/);
	});

	it("counts an account's failures across nodes in Redis: the 11th attempt is throttled", async () => {
		for (let i = 0; i < 10; i++)
			expect(await failureOf(broker(i % 2 ? "a" : "b").call("auth-jwt.login", { login: "chen", password: `wrong guess ${i}`, client: "app" }, { meta: { clientIp: `192.0.2.${i}` } }))).toMatchObject({ type: "INVALID_CREDENTIALS" });
		const limited = await failureOf(broker("eu").call("auth-jwt.login", { login: "chen", password: "river walk 42", client: "app" }, { meta: { clientIp: "192.0.2.200" } }));
		expect(limited).toMatchObject({ type: "RATE_LIMITED", code: 429 });
		expect(limited.data.retryAfter).toBeGreaterThan(0);
	});

	it("limits one client IP to 100 failures an hour, shared by every node, and keeps no login in Redis keys", async () => {
		const redis = new Redis(REAL.redis, { keyPrefix: stores["cn-east"].keyPrefix });
		try {
			const throttles = [new RedisLoginThrottle(redis), new RedisLoginThrottle(nodes.b.node.stores.redis!)];
			for (let i = 0; i < IP_LIMIT.max; i++) expect((await throttles[i % 2]!.admit("ip:198.51.100.7", IP_LIMIT)).ok).toBe(true);
			const refused = await throttles[0]!.admit("ip:198.51.100.7", IP_LIMIT);
			expect(refused).toEqual({ ok: false, retryAfterS: expect.any(Number) });
			expect((refused as { retryAfterS: number }).retryAfterS).toBeGreaterThan(3500);
			// Another IP is not affected; a success gives its slot back.
			const other = await throttles[1]!.admit("ip:198.51.100.8", IP_LIMIT);
			expect(other.ok).toBe(true);
			const keys = await redis.keys(`${stores["cn-east"].keyPrefix}*`);
			expect(keys.join(" ")).not.toMatch(/chen|greta/);
		} finally {
			redis.disconnect();
		}
	});

	it("a node cut off from the feed refuses other regions' tokens after 5 s, yet still sees its own region's logouts", async () => {
		const eu = await broker("a").call<Tokens, unknown>("auth-jwt.login", { login: "greta", password: "fjord walk 42", client: "wx" });
		const cn = await broker("a").call<Tokens, unknown>("auth-jwt.login", { login: "ming", password: "temple walk 42", client: "wx" });
		await (broker("b").transit as unknown as { tx: { disconnect(): Promise<void> } }).tx.disconnect();
		const ms = await within(async () => (await verifyOn("b", eu.accessToken)) === "AUTH_UNAVAILABLE", 8000);
		expect(ms).toBeGreaterThan(3000);
		expect(await verifyOn("a", eu.accessToken)).toBe(eu.sid);
		await broker("a").call("auth-jwt.logout", { accessToken: cn.accessToken });
		expect(await within(async () => (await verifyOn("b", cn.accessToken)) === "SESSION_REVOKED", 1000)).toBeLessThan(1000);
	}, 20_000);
});
