import { decodeJwt, decodeProtectedHeader } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../../../app/node.ts";
import authJwt from "../../../../services/auth-jwt/auth-jwt.service.ts";
import type { SigningKey, Tokens } from "../../../../services/auth-jwt/tokens.ts";
import { ACCESS_TTL_S, signAccess } from "../../../../services/auth-jwt/tokens.ts";
import type { EmbeddedRegions } from "../../../harness/embedded-regions.ts";
import { everyFeedHeard, REGION_IDS as ids, startEmbeddedRegions } from "../../../harness/embedded-regions.ts";
import { forgeAccess } from "../../../harness/forged-tokens.ts";
import { failureOf, within } from "../../../harness/waiting.ts";

const nodes: Record<string, RegionNode> = {};
let cluster: EmbeddedRegions | undefined;
const call = <T = any>(from: string, action: string, params: unknown, meta?: Record<string, unknown>) =>
	nodes[from]!.broker.call<T, unknown>(action, params, meta ? { meta } : undefined);
/** What every region's node says about a token: its claims' sid, or the error code. */
const verdicts = (token: string) =>
	Promise.all(
		ids.map(r =>
			call(r, "auth-jwt.verify", { token }).then(
				c => c.sid as string,
				e => e.type as string
			)
		)
	);

/** Keys rotate in seconds here: published 1 s before signing, kept 2 s after. */
const quickKeys = { ...authJwt, settings: { ...authJwt.settings, publishLeadMs: 1000, retireAfterMs: 2000 } };

const users: Record<string, { id: string; region: string }> = {};

beforeAll(async () => {
	cluster = await startEmbeddedRegions({ namespacePrefix: "authjwt-", services: ["sv-region", "sv-user"], schemas: [quickKeys] });
	Object.assign(nodes, cluster.nodes);
	for (const [name, country] of [
		["lena", "DE"],
		["wei", "CN"],
		["arjun", "IN"]
	] as const)
		users[name] = await call("cn-east", "sv-user.register", {
			username: name,
			password: `secret of ${name.toUpperCase().split("").reverse().join("")} 1`,
			country
		});
	// Every node has heard every region's feed once.
	await everyFeedHeard(cluster!, 5000);
});

afterAll(() => cluster?.stop());

describe("auth-jwt login", () => {
	it("logs in at any region; the home region signs, with claims every node accepts", async () => {
		const t = await call<Tokens>("ap-south", "auth-jwt.login", { login: "lena", password: "secret of ANEL 1", client: "app" });
		expect(t).toMatchObject({ tokenType: "Bearer", expiresIn: 900, region: "eu-central", userId: users.lena!.id });
		const claims = decodeJwt(t.accessToken);
		expect(claims).toMatchObject({ sub: users.lena!.id, rgn: "eu-central", ep: 1, cli: "app", sid: t.sid, iss: "edgehome", aud: "edgehome-api" });
		expect(claims.jti).toMatch(/^[0-9a-f-]{36}$/);
		expect(decodeProtectedHeader(t.accessToken)).toMatchObject({ alg: "ES256", kid: expect.stringMatching(/^eu-central-\d+$/) });
		expect(t.refreshToken).toMatch(new RegExp(`^${users.lena!.id}\\.[A-Za-z0-9_-]{43}$`));
		expect(await verdicts(t.accessToken)).toEqual([t.sid, t.sid, t.sid]);
	});

	it("answers an unknown login and a wrong password with the same error", async () => {
		const wrong = await failureOf(call("cn-east", "auth-jwt.login", { login: "wei", password: "not his password", client: "www" }));
		const unknown = await failureOf(call("cn-east", "auth-jwt.login", { login: "nobody", password: "not his password", client: "www" }));
		expect({ type: wrong.type, code: wrong.code }).toEqual({ type: "INVALID_CREDENTIALS", code: 401 });
		expect({ type: unknown.type, code: unknown.code }).toEqual({ type: wrong.type, code: wrong.code });
	});

	it("rejects extra fields and unknown client types", async () => {
		expect(await failureOf(call("cn-east", "auth-jwt.login", { login: "wei", password: "secret of IEW 1", client: "app", role: "admin" }))).toMatchObject({
			type: "VALIDATION_ERROR",
			code: 422
		});
		expect(await failureOf(call("cn-east", "auth-jwt.login", { login: "wei", password: "secret of IEW 1", client: "desktop" }))).toMatchObject({
			type: "VALIDATION_ERROR",
			code: 422
		});
	});
});

describe("login throttling", () => {
	/** What a client sees of a login attempt: everything but the request's own ids. */
	const answer = (from: string, login: string, password: string, clientIp: string) =>
		call(from, "auth-jwt.login", { login, password, client: "app" }, { clientIp }).then(
			() => "(logged in)",
			(e: { type: string; code: number; message: string; data?: unknown }) => ({ type: e.type, code: e.code, message: e.message, data: e.data })
		);
	const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

	it("lets the owner in from an IP it logged in from before, while an attacker's guesses back the login off for everyone else", async () => {
		await call("cn-east", "sv-user.register", { username: "nadia", password: "monsoon season 7", country: "IN" });
		expect(await answer("cn-east", "nadia", "monsoon season 7", "203.0.113.5")).toBe("(logged in)");
		for (let i = 0; i < 5; i++) expect(await answer("cn-east", "nadia", `guess ${i} wrong`, `198.51.100.${i}`)).toMatchObject({ type: "INVALID_CREDENTIALS" });
		// The right password from a new IP waits like any guess would.
		expect(await answer("cn-east", "nadia", "monsoon season 7", "192.0.2.44")).toMatchObject({ type: "RATE_LIMITED", code: 429, data: { retryAfter: 1 } });
		expect(await answer("cn-east", "nadia", "monsoon season 7", "203.0.113.5")).toBe("(logged in)");
		// A guesser on the owner's IP has a budget of its own there, backed off the same way: five free
		// failures, then refused. (Should the login string's one-second wait run out meanwhile, a guess
		// spends that budget first and doubles its wait; the refusal comes all the same.)
		const near: string[] = [];
		for (let i = 0; i < 8 && near.at(-1) !== "RATE_LIMITED"; i++)
			near.push(((await answer("cn-east", "nadia", `near guess ${i}`, "203.0.113.5")) as { type: string }).type);
		expect(near.slice(0, 5)).toEqual(Array(5).fill("INVALID_CREDENTIALS"));
		expect(near.at(-1)).toBe("RATE_LIMITED");
		// Up to 16 scrypt checks (N=2^15), each well over a second on a loaded machine.
	}, 40_000);

	it("backs a login off exponentially: each failure past the fifth doubles the wait", async () => {
		await call("cn-east", "sv-user.register", { username: "kenji", password: "cherry blossom 9", country: "JP" });
		for (let i = 0; i < 5; i++) expect(await answer("cn-east", "kenji", `guess ${i}`, `198.51.100.${20 + i}`)).toMatchObject({ type: "INVALID_CREDENTIALS" });
		const waits: number[] = [];
		for (let i = 0; i < 2; i++) {
			const limited = (await answer("cn-east", "kenji", "cherry blossom 9", "192.0.2.80")) as { type: string; data: { retryAfter: number } };
			expect(limited.type).toBe("RATE_LIMITED");
			waits.push(limited.data.retryAfter);
			await sleep(limited.data.retryAfter * 1000 + 50);
			expect(await answer("cn-east", "kenji", `late guess ${i}`, `198.51.100.${30 + i}`)).toMatchObject({ type: "INVALID_CREDENTIALS" });
		}
		expect(waits).toEqual([1, 2]);
		expect(await answer("cn-east", "kenji", "cherry blossom 9", "192.0.2.80")).toMatchObject({ type: "RATE_LIMITED", data: { retryAfter: 4 } });
		// Three seconds of waits the test must sit out, and seven scrypt checks.
	}, 30_000);

	it("throttles a login nobody has exactly like a known one, whichever regions the guesses come through", async () => {
		await call("cn-east", "sv-user.register", { username: "tomas", password: "alpine meadow 3", country: "DE" });
		const seen: Record<string, unknown[]> = { tomas: [], "tomas-nobody": [] };
		// Ten failures, the last at cn-east its fifth there, then one more try in each region (tomas lives in eu-central).
		const regions = ["ap-south", "ap-south", "eu-central", "eu-central", "eu-central", "cn-east", "cn-east", "cn-east", "cn-east", "cn-east", ...ids];
		for (const login of ["tomas", "tomas-nobody"] as const)
			for (const [i, from] of regions.entries()) seen[login]!.push(await answer(from, login, `guess ${i}`, `198.51.100.${100 + i}`));
		expect(seen.tomas).toEqual(seen["tomas-nobody"]);
		expect(seen.tomas!.slice(10)).toEqual([
			{ type: "RATE_LIMITED", code: 429, message: "too many failed logins; try again later", data: { retryAfter: 1 } },
			{ type: "INVALID_CREDENTIALS", code: 401, message: "login or password is wrong", data: undefined },
			{ type: "INVALID_CREDENTIALS", code: 401, message: "login or password is wrong", data: undefined }
		]);
		// 26 logins, most of them a scrypt check.
	}, 90_000);
});

describe("refresh tokens", () => {
	it("rotate on every use; the old one replayed ends the whole session everywhere", async () => {
		const first = await call<Tokens>("cn-east", "auth-jwt.login", { login: "wei", password: "secret of IEW 1", client: "www" });
		const second = await call<Tokens>("eu-central", "auth-jwt.refresh", { refreshToken: first.refreshToken });
		expect(second.sid).toBe(first.sid);
		expect(second.refreshToken).not.toBe(first.refreshToken);
		expect(decodeJwt(second.accessToken).jti).not.toBe(decodeJwt(first.accessToken).jti);
		// Replayed after the grace window, as a thief would.
		await new Promise(r => setTimeout(r, 5100));
		expect(await failureOf(call("ap-south", "auth-jwt.refresh", { refreshToken: first.refreshToken }))).toMatchObject({ type: "REFRESH_REUSED", code: 401 });
		expect(await failureOf(call("cn-east", "auth-jwt.refresh", { refreshToken: second.refreshToken }))).toMatchObject({ type: "REFRESH_INVALID", code: 401 });
		const ms = await within(async () => (await verdicts(second.accessToken)).every(v => v === "SESSION_REVOKED"), 1000);
		expect(ms).toBeLessThan(1000);
	}, 15_000);

	it("lets exactly one of two concurrent refreshes win, and that family lives on", async () => {
		const t = await call<Tokens>("cn-east", "auth-jwt.login", { login: "wei", password: "secret of IEW 1", client: "app" });
		const results = await Promise.allSettled([
			call<Tokens>("cn-east", "auth-jwt.refresh", { refreshToken: t.refreshToken }),
			call<Tokens>("ap-south", "auth-jwt.refresh", { refreshToken: t.refreshToken })
		]);
		const won = results.filter(r => r.status === "fulfilled").map(r => (r as PromiseFulfilledResult<Tokens>).value);
		const lost = results.filter(r => r.status === "rejected").map(r => (r as PromiseRejectedResult).reason);
		expect(won).toHaveLength(1);
		expect(lost.map(e => e.type)).toEqual(["REFRESH_CONFLICT"]);
		const next = await call<Tokens>("eu-central", "auth-jwt.refresh", { refreshToken: won[0]!.refreshToken });
		expect(next.sid).toBe(t.sid);
		expect(await verdicts(next.accessToken)).toEqual([t.sid, t.sid, t.sid]);
	});

	it("refuses an access token as a refresh token and a refresh token as an access token", async () => {
		const t = await call<Tokens>("cn-east", "auth-jwt.login", { login: "lena", password: "secret of ANEL 1", client: "cms" });
		expect(await failureOf(call("cn-east", "auth-jwt.refresh", { refreshToken: t.accessToken }))).toMatchObject({ type: "VALIDATION_ERROR", code: 422 });
		expect(await failureOf(call("cn-east", "auth-jwt.verify", { token: t.refreshToken }))).toMatchObject({ type: "TOKEN_MALFORMED", code: 401 });
		// Another gateway's client type: refused, and the token still works where it belongs.
		expect(await failureOf(call("cn-east", "auth-jwt.refresh", { refreshToken: t.refreshToken, client: "app" }))).toMatchObject({
			type: "REFRESH_INVALID",
			code: 401
		});
		expect((await call<Tokens>("cn-east", "auth-jwt.refresh", { refreshToken: t.refreshToken, client: "cms" })).sid).toBe(t.sid);
		expect(await failureOf(call("cn-east", "auth-jwt.refresh", { refreshToken: `${users.lena!.id}.${"A".repeat(43)}` }))).toMatchObject({
			type: "REFRESH_INVALID",
			code: 401
		});
		expect(await failureOf(call("cn-east", "auth-jwt.refresh", { refreshToken: `${"0".repeat(26)}.${"A".repeat(43)}` }))).toMatchObject({
			type: "REFRESH_INVALID",
			code: 401
		});
	});
});

describe("sessions", () => {
	it("keeps one session per client type: a second app login ends the first app session, not the www one", async () => {
		const app1 = await call<Tokens>("cn-east", "auth-jwt.login", { login: "lena", password: "secret of ANEL 1", client: "app" });
		const www = await call<Tokens>("ap-south", "auth-jwt.login", { login: "lena", password: "secret of ANEL 1", client: "www" });
		const app2 = await call<Tokens>("eu-central", "auth-jwt.login", { login: "lena", password: "secret of ANEL 1", client: "app" });
		await within(async () => (await verdicts(app1.accessToken)).every(v => v === "SESSION_REVOKED"), 1000);
		expect(await verdicts(www.accessToken)).toEqual([www.sid, www.sid, www.sid]);
		expect(await verdicts(app2.accessToken)).toEqual([app2.sid, app2.sid, app2.sid]);
		expect(await failureOf(call("cn-east", "auth-jwt.refresh", { refreshToken: app1.refreshToken }))).toMatchObject({ type: "REFRESH_INVALID" });
		const live = await call<{ client: string }[]>("cn-east", "auth-jwt.sessions", { userId: users.lena!.id });
		expect(live.map(s => s.client).sort()).toEqual(["app", "cms", "www"]);
	});

	it("logs out: every node of every region rejects the token within a second", async () => {
		const t = await call<Tokens>("ap-south", "auth-jwt.login", { login: "wei", password: "secret of IEW 1", client: "wx" });
		expect(await call("ap-south", "auth-jwt.logout", { accessToken: t.accessToken })).toEqual({ ended: true });
		expect(await within(async () => (await verdicts(t.accessToken)).every(v => v === "SESSION_REVOKED"), 1000)).toBeLessThan(1000);
		expect(await failureOf(call("cn-east", "auth-jwt.refresh", { refreshToken: t.refreshToken }))).toMatchObject({ type: "REFRESH_INVALID" });
	});

	it("answers SESSION_NOT_FOUND for ending a session that does not exist or is another user's", async () => {
		const t = await call<Tokens>("cn-east", "auth-jwt.login", { login: "wei", password: "secret of IEW 1", client: "cms" });
		for (const [userId, sid] of [
			[users.wei!.id, "6f1c2d3e-4b5a-4978-8a9b-0c1d2e3f4a5b"],
			[users.lena!.id, t.sid]
		])
			expect(await failureOf(call("ap-south", "auth-jwt.endSession", { userId, sid }))).toMatchObject({
				type: "SESSION_NOT_FOUND",
				code: 404,
				message: "no such session"
			});
		expect(await verdicts(t.accessToken)).toEqual([t.sid, t.sid, t.sid]);
		expect(await call("ap-south", "auth-jwt.endSession", { userId: users.wei!.id, sid: t.sid })).toEqual({ ended: true });
	});

	it("refuses a token of another client type when the caller names its own", async () => {
		const t = await call<Tokens>("cn-east", "auth-jwt.login", { login: "wei", password: "secret of IEW 1", client: "app" });
		expect(await failureOf(call("cn-east", "auth-jwt.verify", { token: t.accessToken, client: "www" }))).toMatchObject({ type: "TOKEN_CLIENT", code: 401 });
		expect((await call("cn-east", "auth-jwt.verify", { token: t.accessToken, client: "app" })).sub).toBe(users.wei!.id);
	});
});

describe("signing keys", () => {
	it("publishes one combined JWKS with every region's key, named after its region", async () => {
		const sets = await Promise.all(ids.map(r => call<{ keys: { kid: string; kty: string; d?: string }[] }>(r, "auth-jwt.jwks", {})));
		for (const set of sets) {
			expect(set).toEqual(sets[0]);
			expect(set.keys.every(k => k.kty === "EC" && k.d === undefined)).toBe(true);
			for (const r of ids) expect(set.keys.some(k => k.kid.startsWith(`${r}-`))).toBe(true);
		}
	});

	it("rotates: the next key is trusted everywhere before it signs; the old one verifies until retired", async () => {
		const before = await call<Tokens>("cn-east", "auth-jwt.login", { login: "wei", password: "secret of IEW 1", client: "cms" });
		const oldKid = decodeProtectedHeader(before.accessToken).kid!;
		const { kid } = await call<{ kid: string }>("cn-east", "auth-jwt.rotateKeys", {});
		expect(kid).toBe(`cn-east-${Number(oldKid.split("-").at(-1)) + 1}`);
		// Published in every region before anything is signed with it.
		await within(
			async () => (await Promise.all(ids.map(r => call(r, "auth-jwt.jwks", {})))).every(s => s.keys.some((k: { kid: string }) => k.kid === kid)),
			3000
		);
		expect(decodeProtectedHeader((await call<Tokens>("cn-east", "auth-jwt.refresh", { refreshToken: before.refreshToken })).accessToken).kid).toBe(oldKid);
		await within(async () => (await call("cn-east", "auth-jwt.stats", {})).signing === kid, 15_000);
		const after = await call<Tokens>("cn-east", "auth-jwt.login", { login: "wei", password: "secret of IEW 1", client: "cms" });
		expect(decodeProtectedHeader(after.accessToken).kid).toBe(kid);
		// Retired 2 s after the switch: tokens it signed are refused as signed by an unknown key.
		await within(async () => (await failureOf(call("ap-south", "auth-jwt.verify", { token: before.accessToken }))).type === "TOKEN_KID_UNKNOWN", 15_000);
		expect((await call("ap-south", "auth-jwt.verify", { token: after.accessToken })).sub).toBe(users.wei!.id);
	}, 40_000);
});

describe("tokens forged with a region's real key", () => {
	it("are refused on every node: another region's user, a home claimed falsely, issued in the future, too long-lived", async () => {
		const t = await call<Tokens>("cn-east", "auth-jwt.login", { login: "arjun", password: "secret of NUJRA 1", client: "www" });
		expect(t.region).toBe("ap-south");
		const settings = { issuer: "edgehome", audience: "edgehome-api" };
		const signerOf = (region: string) => (nodes[region]!.broker.getLocalService("auth-jwt") as unknown as { current: { signer: SigningKey } }).current.signer;
		const arjun = { sub: users.arjun!.id, rgn: "ap-south", ep: 1, cli: "www" as const, sid: t.sid };
		const now = Math.floor(Date.now() / 1000);
		const forged = {
			TOKEN_REGION: [await signAccess(settings, signerOf("cn-east"), arjun), await signAccess(settings, signerOf("cn-east"), { ...arjun, rgn: "cn-east" })],
			TOKEN_ISSUED_IN_FUTURE: [await forgeAccess(settings, signerOf("ap-south"), arjun, { iat: now + 600, nbf: now, exp: now + 600 + ACCESS_TTL_S })],
			TOKEN_LIFETIME: [await forgeAccess(settings, signerOf("ap-south"), arjun, { iat: now, nbf: now, exp: now + 30 * 86_400 })]
		};
		for (const [code, tokens] of Object.entries(forged)) for (const token of tokens) expect(await verdicts(token)).toEqual([code, code, code]);
		// The same key, claims and times as ap-south signs them: accepted.
		expect(await verdicts(await signAccess(settings, signerOf("ap-south"), arjun))).toEqual([t.sid, t.sid, t.sid]);
	});

	it("are refused when they carry a verified token's signature over other claims, while that token still verifies", async () => {
		const t = await call<Tokens>("cn-east", "auth-jwt.login", { login: "arjun", password: "secret of NUJRA 1", client: "app" });
		// Verified once on every node: cached there.
		expect(await verdicts(t.accessToken)).toEqual([t.sid, t.sid, t.sid]);
		const [header, payload, signature] = t.accessToken.split(".");
		const claims = JSON.parse(Buffer.from(payload!, "base64url").toString());
		for (const other of [
			{ ...claims, sub: users.wei!.id },
			{ ...claims, cli: "cms" }
		]) {
			const forged = `${header}.${Buffer.from(JSON.stringify(other)).toString("base64url")}.${signature}`;
			expect(await verdicts(forged)).toEqual(["TOKEN_SIGNATURE", "TOKEN_SIGNATURE", "TOKEN_SIGNATURE"]);
		}
		expect(await verdicts(t.accessToken)).toEqual([t.sid, t.sid, t.sid]);
	});
});

describe("rehoming", () => {
	it("moves the user's sessions: the refresh token works at the new home, which signs from then on", async () => {
		const ravi = await call("cn-east", "sv-user.register", { username: "ravi", password: "moving soon 1", country: "IN" });
		const t = await call<Tokens>("cn-east", "auth-jwt.login", { login: "ravi", password: "moving soon 1", client: "www" });
		expect(t.region).toBe("ap-south");
		await call("cn-east", "sv-region.move", { userId: ravi.id, to: "cn-east" });
		const next = await call<Tokens>("eu-central", "auth-jwt.refresh", { refreshToken: t.refreshToken });
		expect(next).toMatchObject({ region: "cn-east", sid: t.sid });
		expect(decodeJwt(next.accessToken)).toMatchObject({ rgn: "cn-east", ep: 2 });
	});
});

describe("revocation feed", () => {
	it("fails closed for a region's users once its feed has been silent for 5 s, and only for them", async () => {
		const lena = await call<Tokens>("cn-east", "auth-jwt.login", { login: "lena", password: "secret of ANEL 1", client: "wx" });
		const wei = await call<Tokens>("cn-east", "auth-jwt.login", { login: "wei", password: "secret of IEW 1", client: "wx" });
		await nodes["eu-central"]!.stop();
		delete nodes["eu-central"];
		const started = Date.now();
		await within(async () => (await failureOf(call("cn-east", "auth-jwt.verify", { token: lena.accessToken }))).type === "AUTH_UNAVAILABLE", 8000);
		expect(Date.now() - started).toBeGreaterThan(3000);
		expect(await failureOf(call("ap-south", "auth-jwt.verify", { token: lena.accessToken }))).toMatchObject({ type: "AUTH_UNAVAILABLE", code: 503 });
		expect((await call("ap-south", "auth-jwt.verify", { token: wei.accessToken })).sub).toBe(users.wei!.id);
	}, 15_000);
});
