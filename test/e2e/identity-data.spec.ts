import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../app/node.ts";
import type { EmbeddedRegions } from "../harness/embedded-regions.ts";
import { everyFeedHeard, REGION_IDS as ids, startEmbeddedRegions } from "../harness/embedded-regions.ts";
import type { HttpAnswer } from "../harness/gateways.ts";
import { gatewaySchemas, gatewayUrl, http } from "../harness/gateways.ts";

/**
 * Identity data over HTTP (issue #11): an e-mail re-spelled by its owner stays the owner's, and
 * the field rules refuse what no person's identity holds. Every request goes through a real
 * gateway to the real services.
 */

const nodes: Record<string, RegionNode> = {};
let cluster: EmbeddedRegions | undefined;
const www = (method: string, path: string, opts?: Parameters<typeof http>[3]) => http(gatewayUrl(nodes["cn-east"]!.broker, "api-www"), method, path, opts);
const PASSWORD = "quiet harbour 7x";

function expectRefused(res: HttpAnswer, status: number, code: string, field?: string): void {
	expect({ status: res.status, code: res.body?.error?.code }).toEqual({ status, code });
	if (field) expect(res.body.error.details.map((d: { field: string }) => d.field)).toContain(field);
	expect(res.text).not.toMatch(/\bat .+:\d+:\d+|node_modules/);
}

/** Every users row of every region, and what the directory says each identity resolves to. */
async function stored(): Promise<unknown[]> {
	return Promise.all(ids.map(r => nodes[r]!.stores.sql.db.selectFrom("users").selectAll().orderBy("id").execute()));
}

const resolve = (kind: string, value: string) =>
	nodes["cn-east"]!.broker.call<{ userId: string }, unknown>("sv-region.resolve", { kind, value }).then(
		r => r.userId,
		(err: { type?: string }) => err.type
	);

async function logIn(login: string): Promise<HttpAnswer> {
	return www("POST", "/api/v1/auth/login", { body: { login, password: PASSWORD } });
}

beforeAll(async () => {
	cluster = await startEmbeddedRegions({ namespacePrefix: "idd-", services: ["sv-region", "sv-user", "auth-jwt", "auth-rbac"], schemas: gatewaySchemas() });
	Object.assign(nodes, cluster.nodes);
	await everyFeedHeard(cluster, 10_000);
});

afterAll(() => cluster?.stop());

describe("PATCH /me with another spelling of the user's own e-mail", () => {
	// [what differs, registered spelling, spelling sent by PATCH, a third spelling of the same address]
	const spellings: [string, string, string, string][] = [
		["case", "Vic1@Example.com", "vic1@example.com", "VIC1@EXAMPLE.COM"],
		["a combining accent (NFD) against a precomposed one (NFC)", "rene\u0301@example.fr", "ren\u00e9@example.fr", "REN\u00c9@EXAMPLE.FR"],
		["fullwidth letters, equal only under NFKC", "\uff4a\uff4f\uff59@example.jp", "joy@example.jp", "JOY@example.jp"]
	];

	for (const [n, [what, registered, patched, third]] of spellings.entries())
		it(`keeps the address the user's when only ${what} changes: login by e-mail works, nobody can register it`, async () => {
			const username = `spelling-${n}`;
			const created = await www("POST", "/api/v1/auth/register", { body: { username, password: PASSWORD, email: registered, country: "DE" } });
			expect(created.status, created.text).toBe(201);
			const { accessToken } = (await logIn(registered)).body;

			const res = await www("PATCH", "/api/v1/me", { token: accessToken, body: { email: patched } });
			expect(res.status, res.text).toBe(200);
			expect(res.body.email).toBe(patched);

			for (const spelling of [registered, patched, third]) {
				expect(await resolve("email", spelling)).toBe(created.body.id);
				const login = await logIn(spelling);
				expect(login.status, `login as ${JSON.stringify(spelling)}: ${login.text}`).toBe(200);
				expect((await www("GET", "/api/v1/me", { token: login.body.accessToken })).body.id).toBe(created.body.id);
			}
			const before = await stored();
			for (const [i, spelling] of [registered, patched, third].entries())
				expectRefused(
					await www("POST", "/api/v1/auth/register", { body: { username: `${username}-x${i}`, password: PASSWORD, email: spelling } }),
					409,
					"EMAIL_TAKEN"
				);
			expect(await stored()).toEqual(before);
		});
});

describe("field rules refuse what no identity holds, and change nothing", () => {
	const register: [string, Record<string, unknown>, string][] = [
		["an unassigned country ZZ", { country: "ZZ" }, "country"],
		["an unassigned country XX", { country: "XX" }, "country"],
		["an exceptionally reserved country UK (the code is GB)", { country: "UK" }, "country"],
		["a username of dots only", { username: "..." }, "username"],
		["a username of punctuation only", { username: "_-_." }, "username"],
		["a username ending in a dot", { username: "anna." }, "username"],
		["a common password", { password: "iloveyou123" }, "password"],
		["a common password in other case", { password: "PassWord123" }, "password"],
		["a common password in fullwidth letters", { password: "\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44\uff11" }, "password"],
		["an e-mail holding NUL", { email: "nul\u0000@example.com" }, "email"],
		["an e-mail holding a control character", { email: "bell\u0007@example.com" }, "email"],
		["an e-mail holding DEL", { email: "del\u007f@example.com" }, "email"],
		["an e-mail holding a C1 control", { email: "csi\u009b@example.com" }, "email"],
		["an e-mail of 254 characters but over 254 bytes in UTF-8", { email: `${"\u00e9".repeat(242)}@example.com` }, "email"]
	];
	for (const [name, bad, field] of register)
		it(`POST /auth/register refuses ${name} with 400 VALIDATION_FAILED`, async () => {
			const body = { username: "edge-case", password: PASSWORD, email: "edge@example.com", ...bad };
			const before = await stored();
			expectRefused(await www("POST", "/api/v1/auth/register", { body }), 400, "VALIDATION_FAILED", field);
			expect(await stored()).toEqual(before);
			expect(await resolve("username", String(body.username))).toBe("USER_NOT_FOUND");
			expect(await resolve("email", String(body.email))).toBe("USER_NOT_FOUND");
		});

	it("PATCH /me refuses an unassigned country and a control character in the e-mail, and the profile stays", async () => {
		expect(
			(await www("POST", "/api/v1/auth/register", { body: { username: "steady", password: PASSWORD, email: "steady@example.com", country: "JP" } })).status
		).toBe(201);
		const { accessToken } = (await logIn("steady")).body;
		const profile = (await www("GET", "/api/v1/me", { token: accessToken })).body;
		const before = await stored();
		for (const [body, field] of [
			[{ country: "ZZ" }, "country"],
			[{ country: "XX" }, "country"],
			[{ email: "steady\u0000@example.com" }, "email"],
			[{ email: "steady@exa\u001bmple.com" }, "email"]
		] as const)
			expectRefused(await www("PATCH", "/api/v1/me", { token: accessToken, body }), 400, "VALIDATION_FAILED", field);
		expect(await stored()).toEqual(before);
		expect((await www("GET", "/api/v1/me", { token: accessToken })).body).toEqual(profile);
	});

	it("still takes what is fine: an assigned country, a dotted username, an uncommon password", async () => {
		const res = await www("POST", "/api/v1/auth/register", {
			body: { username: "ann.lee_2", password: "ferry at 6 to lamma", email: "ann.lee@example.hk", country: "HK" }
		});
		expect(res.status, res.text).toBe(201);
	});
});
