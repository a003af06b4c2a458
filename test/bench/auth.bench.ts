import { createPublicKey, randomBytes } from "node:crypto";
import { decodeProtectedHeader, jwtVerify } from "jose";
import { verifyAccess } from "../../services/auth-jwt/tokens.ts";
import authRbac from "../../services/auth-rbac/auth-rbac.service.ts";
import type { Rule } from "../../services/auth-rbac/model.ts";
import { grantRule, newRbacEnforcer, permissionRule } from "../../services/auth-rbac/model.ts";
import { SqlPolicyAdapter } from "../../services/auth-rbac/policy-adapter.ts";
import { hashPassword, SCRYPT, verifyPassword } from "../../services/sv-user/passwords.ts";
import { startServices } from "../harness/embedded.ts";
import { startKvNode } from "../harness/kv-node.ts";
import { cleanupRealStores, deleteKvBucket, REAL, realStores, runId } from "../harness/real-servers.ts";
import { alternate, round, withCleanups } from "./measure.ts";

/**
 * `npm run bench:auth` on the real NATS, MariaDB and Redis: access-token verifications per second
 * (keys cached) against jose's bare ES256 check; enforce per second with 10k policies, decisions
 * cached and uncached, against a bare casbin enforcer; login p50 against the bare scrypt check
 * it contains. Ends with one JSON line.
 */

const WINDOW_MS = 3000;
const ROUNDS = 3;
const LOGINS = 40;
const POLICIES = 10_000;
const ROLES = 1000;
const RESOURCES = 50;
/** Distinct requests the enforce loops cycle through. */
const REQUESTS = 500;

type Op = () => Promise<unknown>;

/** One untimed second for each, then ROUNDS timed windows of each in turn. */
const ALTERNATING = { warmupMs: 1000, windowMs: WINDOW_MS, rounds: ROUNDS };

/** Sequential operations per second (each op is CPU-bound: concurrency would only queue). */
async function rate(op: Op, ms: number): Promise<number> {
	let n = 0;
	const started = performance.now();
	const deadline = started + ms;
	while (performance.now() < deadline) {
		for (let i = 0; i < 50; i++) await op();
		n += 50;
	}
	return n / ((performance.now() - started) / 1000);
}

async function p50(op: Op, n: number): Promise<number> {
	const ms: number[] = [];
	for (let i = 0; i < n; i++) {
		const started = performance.now();
		await op();
		ms.push(performance.now() - started);
	}
	ms.sort((x, y) => x - y);
	return ms[Math.floor(n / 2)]!;
}

async function main(): Promise<void> {
	// A throwaway at-rest key: the bench's users and signing keys are dropped with its database.
	process.env.EDGEHOME_PII_KEYS ??= `b1:${randomBytes(32).toString("base64")}`;
	const run = runId();
	const bucket = `bench-${run}-directory`;
	const stores = realStores(run, "cn-east");
	const figures = await withCleanups(async cleanups => {
		cleanups.push(async () => {
			await cleanupRealStores(stores);
			await deleteKvBucket(bucket);
		});
		const node = await startKvNode({
			region: "cn-east",
			natsUrl: REAL.nats,
			bucket,
			namespacePrefix: `bench${run}-`,
			blindIndexKey: randomBytes(32),
			services: ["sv-region", "sv-user", "auth-jwt"],
			stores
		});
		cleanups.push(node.stop);
		const { broker } = node.node;
		const local = { nodeID: broker.nodeID };
		const password = "quiet harbour 7";
		await broker.call("sv-user.register", { username: "bench", password, country: "CN" });
		const tokens = await broker.call<{ accessToken: string }, unknown>("auth-jwt.login", { login: "bench", password, client: "app" });

		// (1) verification: jose's bare ES256 check (no claims, no revocation view) vs auth-jwt.verify.
		const jwks = await broker.call<{ keys: { kid: string }[] }, unknown>("auth-jwt.jwks", {}, local);
		const kid = decodeProtectedHeader(tokens.accessToken).kid!;
		const publicKey = createPublicKey({ key: jwks.keys.find(k => k.kid === kid) as never, format: "jwk" });
		const [bareVerify, ourVerify] = await alternate(
			() => jwtVerify(tokens.accessToken, publicKey, { algorithms: ["ES256"] }),
			() => broker.call("auth-jwt.verify", { token: tokens.accessToken }, local),
			rate,
			ALTERNATING
		);
		// What a miss of the node's verified-token cache costs: the full check, signature included.
		const keys = new Map([[kid, publicKey]]);
		const uncachedVerify = await rate(() => verifyAccess({ issuer: "edgehome", audience: "edgehome-api" }, keys, tokens.accessToken), WINDOW_MS);

		// (3) login: the scrypt check alone vs a whole login (throttle, directory, scrypt, session, signing).
		const stored = await hashPassword(password);
		const scryptP50 = await p50(() => verifyPassword(password, stored), LOGINS);
		const loginP50 = await p50(() => broker.call("auth-jwt.login", { login: "bench", password, client: "app" }), LOGINS);

		// (2) enforce with 10k permissions: a bare casbin enforcer on the same rules vs auth-rbac.enforce,
		// its decision cache on (default size) and off.
		const rbac = await startServices([authRbac], { stores, broker: { nodeID: `bench-rbac-${run}` } });
		cleanups.push(rbac.stop);
		const uncached = await startServices([{ ...authRbac, settings: { decisionCacheSize: 0 } }], { stores, broker: { nodeID: `bench-rbac-nocache-${run}` } });
		cleanups.push(uncached.stop);
		const rules: Rule[] = [];
		for (let i = 0; i < POLICIES; i++) rules.push(permissionRule(`role${i % ROLES}`, `res${Math.floor(i / ROLES) * 5 + (i % 5)}`, ["read", "write"][i % 2]!));
		const users = Array.from({ length: 100 }, (_, i) => `bench${String(i).padStart(21, "0")}`);
		for (const [i, u] of users.entries()) rules.push(grantRule(u, `role${(i * 7) % ROLES}`), grantRule(u, `role${(i * 13) % ROLES}`));
		const adapter = new SqlPolicyAdapter(rbac.stores.sql.db as never);
		const { version } = await adapter.add(rules);
		for (const b of [rbac, uncached]) {
			const deadline = Date.now() + 10_000;
			while ((await b.broker.call<{ version: number }, unknown>("auth-rbac.stats", {})).version !== version)
				if (Date.now() > deadline) throw new Error("auth-rbac did not load the bench rules");
				else await new Promise(r => setTimeout(r, 50));
		}
		const requests = Array.from({ length: REQUESTS }, (_, i) => ({
			userId: users[i % users.length]!,
			resource: `res${i % RESOURCES}`,
			action: i % 3 ? "read" : "write"
		}));
		const bare = await newRbacEnforcer(adapter);
		let k = 0;
		const next = () => requests[k++ % REQUESTS]!;
		// The index must decide as casbin does on every request measured.
		for (const r of requests)
			if ((await rbac.broker.call<{ allowed: boolean }, unknown>("auth-rbac.enforce", r)).allowed !== bare.enforceSync(r.userId, r.resource, r.action))
				throw new Error(`auth-rbac and casbin disagree on ${JSON.stringify(r)}`);
		const allowedShare = requests.filter(r => bare.enforceSync(r.userId, r.resource, r.action)).length / REQUESTS;
		const bareEnforce = await rate(async () => {
			const r = next();
			return bare.enforceSync(r.userId, r.resource, r.action);
		}, WINDOW_MS);
		const [cachedEnforce, uncachedEnforce] = await alternate(
			() => rbac.broker.call("auth-rbac.enforce", next()),
			() => uncached.broker.call("auth-rbac.enforce", next()),
			rate,
			ALTERNATING
		);

		return { bareVerify, ourVerify, uncachedVerify, scryptP50, loginP50, bareEnforce, cachedEnforce, uncachedEnforce, allowedShare };
	});

	const ratios = {
		verifyOverBare: figures.ourVerify / figures.bareVerify,
		uncachedVerifyOverBare: figures.uncachedVerify / figures.bareVerify,
		enforceUncachedOverBareCasbin: figures.uncachedEnforce / figures.bareEnforce,
		enforceCachedOverBareCasbin: figures.cachedEnforce / figures.bareEnforce,
		loginOverScrypt: figures.loginP50 / figures.scryptP50
	};
	console.log(`auth bench (real NATS, MariaDB, Redis; ${ROUNDS} alternating ${WINDOW_MS / 1000} s windows)\n`);
	console.log(`verify  jose bare ES256:        ${Math.round(figures.bareVerify).toLocaleString("en-US")} /s`);
	console.log(
		`verify  auth-jwt.verify (local, token seen before): ${Math.round(figures.ourVerify).toLocaleString("en-US")} /s  (x${ratios.verifyOverBare.toFixed(1)} of bare)`
	);
	console.log(
		`verify  full check (a new token: signature, claims): ${Math.round(figures.uncachedVerify).toLocaleString("en-US")} /s  (x${ratios.uncachedVerifyOverBare.toFixed(2)} of bare)`
	);
	console.log(`enforce ${REQUESTS} requests, ${(figures.allowedShare * 100).toFixed(0)}% allowed, same decisions as casbin`);
	console.log(`enforce bare casbin, ${POLICIES} rules:  ${Math.round(figures.bareEnforce).toLocaleString("en-US")} /s`);
	console.log(
		`enforce auth-rbac uncached:        ${Math.round(figures.uncachedEnforce).toLocaleString("en-US")} /s  (x${ratios.enforceUncachedOverBareCasbin.toFixed(1)} of bare casbin)`
	);
	console.log(
		`enforce auth-rbac cached:          ${Math.round(figures.cachedEnforce).toLocaleString("en-US")} /s  (x${ratios.enforceCachedOverBareCasbin.toFixed(1)} of bare casbin)`
	);
	console.log(`login   scrypt N=2^${Math.log2(SCRYPT.N)} r=${SCRYPT.r} p=${SCRYPT.p} alone: p50 ${figures.scryptP50.toFixed(1)} ms`);
	console.log(`login   auth-jwt.login:          p50 ${figures.loginP50.toFixed(1)} ms  (x${ratios.loginOverScrypt.toFixed(2)} of scrypt)\n`);
	console.log(
		JSON.stringify({
			verify: {
				bareJosePerSec: Math.round(figures.bareVerify),
				authJwtPerSec: Math.round(figures.ourVerify),
				fullCheckPerSec: Math.round(figures.uncachedVerify)
			},
			enforce: {
				policies: POLICIES,
				bareCasbinPerSec: Math.round(figures.bareEnforce),
				uncachedPerSec: Math.round(figures.uncachedEnforce),
				cachedPerSec: Math.round(figures.cachedEnforce)
			},
			login: { scrypt: { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p }, scryptP50Ms: round(figures.scryptP50, 2), loginP50Ms: round(figures.loginP50, 2) },
			ratios: Object.fromEntries(Object.entries(ratios).map(([k, v]) => [k, round(v, 3)]))
		})
	);
}

main().catch(err => {
	console.error(err);
	process.exitCode = 1;
});
