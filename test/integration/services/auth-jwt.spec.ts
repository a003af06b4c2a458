import { createHmac, randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parsePiiKeys } from "../../../kernel/sealing.ts";
import { IP_BACKOFF, RedisLoginThrottle } from "../../../services/auth-jwt/login-throttle.ts";
import { SigningKeys } from "../../../services/auth-jwt/signing-keys.ts";
import type { Tokens } from "../../../services/auth-jwt/tokens.ts";
import { ACCESS_TTL_S, signAccess } from "../../../services/auth-jwt/tokens.ts";
import { forgeAccess } from "../../harness/forged-tokens.ts";
import type { KvNode } from "../../harness/kv-node.ts";
import { startKvNode } from "../../harness/kv-node.ts";
import { BACKED_OFF_WAITS, hammer } from "../../harness/login-backoff.ts";
import { cleanupRealStores, deleteKvBucket, REAL, realStores, runId } from "../../harness/real-servers.ts";
import { failureOf, within } from "../../harness/waiting.ts";

const run = runId();
const bucket = `t-${run}-directory`;
const stores = { "cn-east": realStores(run, "cn-east"), "eu-central": realStores(run, "eu-central") };
/** Two nodes of cn-east sharing its MariaDB and Redis, one node of eu-central. */
const nodes: Record<"a" | "b" | "eu", KvNode> = {} as never;
const broker = (n: keyof typeof nodes) => nodes[n].node.broker;
/** Verified on that very node (verification is local: no hop). */
const verifyOn = (n: keyof typeof nodes, token: string) =>
	broker(n)
		.call<{ sid: string }, unknown>("auth-jwt.verify", { token }, { nodeID: broker(n).nodeID })
		.then(
			c => c.sid,
			e => e.type as string
		);

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
		const stats = await Promise.all(
			(["a", "b", "eu"] as const).map(n => broker(n).call<{ current: Record<string, boolean> }, unknown>("auth-jwt.stats", {}, { nodeID: broker(n).nodeID }))
		);
		return stats.every(s => s.current["cn-east"] && s.current["eu-central"]);
	}, 10_000);
});

afterAll(async () => {
	for (const n of Object.values(nodes)) await n.stop().catch(() => undefined);
	for (const s of Object.values(stores)) await cleanupRealStores(s);
	await deleteKvBucket(bucket);
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
		const ms = await within(
			async () => (await Promise.all((["a", "b", "eu"] as const).map(n => verifyOn(n, t.accessToken)))).every(v => v === "SESSION_REVOKED"),
			1000
		);
		expect(ms).toBeLessThan(1000);
		expect(chen.id).toMatch(/^[0-9a-z]{26}$/);
	});

	it("backs a login off across a region's nodes in Redis, and lets its owner in from an IP it logged in from before", async () => {
		const login = (n: "a" | "b", password: string, clientIp: string) =>
			failureOf(broker(n).call("auth-jwt.login", { login: "chen", password, client: "app" }, { meta: { clientIp } }));
		expect(await login("a", "river walk 42", "192.0.2.200")).toMatchObject({ type: "(succeeded)" });
		for (let i = 0; i < 5; i++) expect(await login(i % 2 ? "a" : "b", `wrong guess ${i}`, `192.0.2.${i}`)).toMatchObject({ type: "INVALID_CREDENTIALS" });
		expect(await login("a", "river walk 42", "192.0.2.201")).toMatchObject({ type: "RATE_LIMITED", code: 429, data: { retryAfter: 1 } });
		expect(await login("b", "river walk 42", "192.0.2.200")).toMatchObject({ type: "(succeeded)" });
		// The same waits as in memory, on the real Redis.
		expect(await hammer(new RedisLoginThrottle(nodes.a.node.stores.redis!), `login:run-${run}`, 1_000_000, 17)).toEqual(BACKED_OFF_WAITS);
	});

	it("limits one client IP to 100 free failures an hour, shared by every node, and keeps no login or IP in Redis keys", async () => {
		const redis = new Redis(REAL.redis, { keyPrefix: stores["cn-east"].keyPrefix });
		try {
			const throttles = [new RedisLoginThrottle(redis), new RedisLoginThrottle(nodes.b.node.stores.redis!)];
			for (let i = 0; i < IP_BACKOFF.free; i++) expect((await throttles[i % 2]!.admit("ip:198.51.100.7", IP_BACKOFF)).ok).toBe(true);
			const refused = await throttles[0]!.admit("ip:198.51.100.7", IP_BACKOFF);
			expect(refused).toEqual({ ok: false, retryAfterS: 60 });
			// Another IP is not affected; a success gives its slot back.
			const other = await throttles[1]!.admit("ip:198.51.100.8", IP_BACKOFF);
			expect(other.ok).toBe(true);
			const keys = (await redis.keys(`${stores["cn-east"].keyPrefix}*`)).filter(k => !k.includes("198.51.100."));
			expect(keys.some(k => k.includes("login-known:"))).toBe(true);
			expect(keys.join(" ")).not.toMatch(/chen|greta|192\.0\.2/);
		} finally {
			redis.disconnect();
		}
	});

	it("refuses forged and ill-claimed tokens on every node, without touching files or the network", async () => {
		const t = await broker("a").call<Tokens, unknown>("auth-jwt.login", { login: "greta", password: "fjord walk 42", client: "www" });
		const [header, payload, signature] = t.accessToken.split(".") as [string, string, string];
		const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
		const kid = JSON.parse(Buffer.from(header, "base64url").toString()).kid as string;
		const jwks = await broker("a").call<{ keys: { kid: string }[] }, unknown>("auth-jwt.jwks", {}, { nodeID: broker("a").nodeID });
		const publicJwk = JSON.stringify(jwks.keys.find(k => k.kid === kid));
		const hs = b64({ alg: "HS256", kid, typ: "JWT" });
		const tampered = Buffer.from(payload, "base64url");
		tampered[tampered.length - 3] = tampered[tampered.length - 3]! ^ 1;
		const claims = JSON.parse(Buffer.from(payload, "base64url").toString());
		const signerOf = async (node: KvNode, region: string) =>
			(
				await new SigningKeys(node.node.stores.sql.db, region, parsePiiKeys(process.env.EDGEHOME_PII_KEYS!), {
					rotateAfterMs: 1e12,
					publishLeadMs: 1e9,
					retireAfterMs: 1e9
				}).load()
			).signer!;
		const signer = await signerOf(nodes.eu, "eu-central");
		const cnSigner = await signerOf(nodes.a, "cn-east");
		const ok = { issuer: "edgehome", audience: "edgehome-api" };
		const mine = { sub: claims.sub, rgn: claims.rgn, ep: claims.ep, cli: claims.cli, sid: claims.sid };
		const now = Math.floor(Date.now() / 1000);
		const forged: Record<string, [string, string]> = {
			"alg none": [`${b64({ alg: "none", kid })}.${payload}.`, "TOKEN_ALGORITHM"],
			"HS256 with the public key": [`${hs}.${payload}.${createHmac("sha256", publicJwk).update(`${hs}.${payload}`).digest("base64url")}`, "TOKEN_ALGORITHM"],
			"one payload byte changed": [`${header}.${tampered.toString("base64url")}.${signature}`, "TOKEN_SIGNATURE"],
			"expired beyond tolerance": [await signAccess(ok, signer, mine, Date.now() - 16 * 60_000), "TOKEN_EXPIRED"],
			"nbf in the future": [await signAccess(ok, signer, mine, Date.now() + 5 * 60_000), "TOKEN_NOT_YET_VALID"],
			"wrong issuer": [await signAccess({ ...ok, issuer: "elsewhere" }, signer, mine), "TOKEN_ISSUER"],
			"wrong audience": [await signAccess({ ...ok, audience: "other-api" }, signer, mine), "TOKEN_AUDIENCE"],
			"refresh token as access token": [t.refreshToken, "TOKEN_MALFORMED"],
			"kid as a path": [`${b64({ alg: "ES256", kid: "../../dev/null" })}.${payload}.${signature}`, "TOKEN_KID_UNKNOWN"],
			"kid as a URL": [`${b64({ alg: "ES256", kid: "https://evil.example/jwks.json" })}.${payload}.${signature}`, "TOKEN_KID_UNKNOWN"],
			// greta lives in eu-central: cn-east's real key must not sign for her.
			"cn-east's key for an eu-central user": [await signAccess(ok, cnSigner, mine), "TOKEN_REGION"],
			"cn-east's key claiming cn-east for an eu-central user": [await signAccess(ok, cnSigner, { ...mine, rgn: "cn-east" }), "TOKEN_REGION"],
			"issued in the future, nbf now": [
				await forgeAccess(ok, signer, mine, { iat: now + 600, nbf: now, exp: now + 600 + ACCESS_TTL_S }),
				"TOKEN_ISSUED_IN_FUTURE"
			],
			"valid for a year": [await forgeAccess(ok, signer, mine, { iat: now, nbf: now, exp: now + 365 * 86_400 }), "TOKEN_LIFETIME"]
		};
		for (const n of ["a", "b", "eu"] as const)
			for (const [what, [token, code]] of Object.entries(forged)) expect({ n, what, got: await verifyOn(n, token) }).toEqual({ n, what, got: code });
		expect(await verifyOn("b", await signAccess(ok, signer, mine, Date.now() - 15 * 60_000 - 10_000))).toBe(t.sid);
	});

	it("ends the whole token family when a rotated refresh token is replayed; of two concurrent refreshes one wins", async () => {
		await broker("b").call("sv-user.register", { username: "olaf", password: "snow drift 77", country: "DE" });
		const first = await broker("a").call<Tokens, unknown>("auth-jwt.login", { login: "olaf", password: "snow drift 77", client: "app" });
		const race = await Promise.allSettled([
			broker("a").call<Tokens, unknown>("auth-jwt.refresh", { refreshToken: first.refreshToken }),
			broker("b").call<Tokens, unknown>("auth-jwt.refresh", { refreshToken: first.refreshToken })
		]);
		const won = race.filter(r => r.status === "fulfilled") as PromiseFulfilledResult<Tokens>[];
		expect(won).toHaveLength(1);
		expect(race.filter(r => r.status === "rejected").map(r => (r as PromiseRejectedResult).reason.type)).toEqual(["REFRESH_CONFLICT"]);
		const next = await broker("eu").call<Tokens, unknown>("auth-jwt.refresh", { refreshToken: won[0]!.value.refreshToken });
		expect(next.sid).toBe(first.sid);
		await new Promise(r => setTimeout(r, 5100));
		expect(await failureOf(broker("a").call("auth-jwt.refresh", { refreshToken: first.refreshToken }))).toMatchObject({ type: "REFRESH_REUSED", code: 401 });
		await within(
			async () => (await Promise.all((["a", "b", "eu"] as const).map(n => verifyOn(n, next.accessToken)))).every(v => v === "SESSION_REVOKED"),
			1000
		);
		expect(await failureOf(broker("b").call("auth-jwt.refresh", { refreshToken: next.refreshToken }))).toMatchObject({ type: "REFRESH_INVALID" });
	}, 15_000);

	it("keeps one session per client type, answers unknown login like a wrong password, and stores nothing of a registration with extra fields", async () => {
		const app1 = await broker("a").call<Tokens, unknown>("auth-jwt.login", { login: "greta", password: "fjord walk 42", client: "app" });
		const cms = await broker("b").call<Tokens, unknown>("auth-jwt.login", { login: "greta", password: "fjord walk 42", client: "cms" });
		const app2 = await broker("eu").call<Tokens, unknown>("auth-jwt.login", { login: "greta", password: "fjord walk 42", client: "app" });
		await within(
			async () => (await Promise.all((["a", "b", "eu"] as const).map(n => verifyOn(n, app1.accessToken)))).every(v => v === "SESSION_REVOKED"),
			1000
		);
		for (const n of ["a", "b", "eu"] as const) expect([await verifyOn(n, cms.accessToken), await verifyOn(n, app2.accessToken)]).toEqual([cms.sid, app2.sid]);
		const unknown = await failureOf(broker("a").call("auth-jwt.login", { login: "nobody-here", password: "whatever 1", client: "app" }));
		const wrong = await failureOf(broker("a").call("auth-jwt.login", { login: "greta", password: "whatever 1", client: "app" }));
		expect(unknown).toMatchObject({ type: "INVALID_CREDENTIALS", code: 401 });
		expect({ type: wrong.type, code: wrong.code }).toEqual({ type: unknown.type, code: unknown.code });
		const before = await nodes.a.node.stores.sql.db.selectFrom("users").select("id").execute();
		for (const extra of [{ role: "admin" }, { region: "eu-central" }, { id: "0".repeat(26) }])
			expect(await failureOf(broker("a").call("sv-user.register", { username: "intruder", password: "sneaky pass 1", ...extra }))).toMatchObject({
				type: "VALIDATION_ERROR"
			});
		expect(await nodes.a.node.stores.sql.db.selectFrom("users").select("id").execute()).toEqual(before);
		expect(await failureOf(broker("a").call("sv-region.resolve", { kind: "username", value: "intruder" }))).toMatchObject({ code: 404 });
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
