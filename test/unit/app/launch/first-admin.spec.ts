import type { ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionCall } from "../../../../app/launch/first-admin.ts";
import { adminPasswordFromEnv, createAdmin, FIRST_ADMIN, generatePassword } from "../../../../app/launch/first-admin.ts";
import type { RegionNode } from "../../../../app/node.ts";
import { adminCreate } from "../../../../app/repl/admin.command.ts";
import { replCommands } from "../../../../app/repl/index.ts";
import { loadRegions } from "../../../../regions/loader.ts";
import type { EmbeddedRegions } from "../../../harness/embedded-regions.ts";
import { startEmbeddedRegions } from "../../../harness/embedded-regions.ts";

const nodes: Record<string, RegionNode> = {};
let cluster: EmbeddedRegions | undefined;
const call = <T = any>(from: string, action: string, params: unknown) => nodes[from]!.broker.call<T, unknown>(action, params);
/** What `npm start` hands createAdmin: calls made at the first administrator's home region. */
const atHome: RegionCall = (action, params) => call(FIRST_ADMIN.region, action, params);
const mayWriteRoles = async (userId: string, from = "ap-south") =>
	(await call(from, "auth-rbac.enforce", { userId, resource: "roles", action: "write" })).allowed as boolean;

beforeAll(async () => {
	cluster = await startEmbeddedRegions({ namespacePrefix: "firstadmin-", services: ["sv-region", "sv-user", "auth-rbac", "auth-jwt"] });
	Object.assign(nodes, cluster.nodes);
});

afterAll(() => cluster?.stop());

describe("the first administrator", () => {
	let first: Awaited<ReturnType<typeof createAdmin>>;

	it("is created once, homed in cn-east, with a generated password; a second run changes nothing", async () => {
		first = await createAdmin(atHome, FIRST_ADMIN.username);
		expect(first).toMatchObject({ created: true, username: "admin", region: "cn-east", generatedPassword: expect.stringMatching(/^[A-Za-z0-9_-]{24}$/) });
		expect(await call("eu-central", "sv-region.lookup", { userId: first.userId })).toMatchObject({ region: "cn-east" });
		expect(await createAdmin(atHome, FIRST_ADMIN.username)).toEqual({ created: false, userId: first.userId, username: "admin" });
		expect(await createAdmin(atHome, FIRST_ADMIN.username, "another admin password")).toEqual({ created: false, userId: first.userId, username: "admin" });
	});

	it("logs in with that password, and may write roles and permissions", async () => {
		const password = first.created ? first.generatedPassword : undefined;
		const tokens = await call("eu-central", "auth-jwt.login", { login: "admin", password, client: "cms" });
		expect(tokens).toMatchObject({ userId: first.userId, region: "cn-east" });
		expect(await mayWriteRoles(first.userId)).toBe(true);
		expect((await call("cn-east", "auth-rbac.enforce", { userId: first.userId, resource: "permissions", action: "write" })).allowed).toBe(true);
		expect((await call("cn-east", "auth-rbac.rolesOf", { userId: first.userId })).direct).toEqual(["admin"]);
	});

	it("takes ADMIN_PASSWORD when set, and gives no password back then", async () => {
		const password = adminPasswordFromEnv({ ADMIN_PASSWORD: "a long admin passphrase" });
		const res = await createAdmin(atHome, "env-admin", password);
		expect(res).toEqual({ created: true, userId: expect.any(String), username: "env-admin", region: "cn-east" });
		expect(await call("ap-south", "auth-jwt.login", { login: "env-admin", password: "a long admin passphrase", client: "cms" })).toMatchObject({
			userId: res.userId
		});
		expect(await mayWriteRoles(res.userId)).toBe(true);
		expect(adminPasswordFromEnv({ ADMIN_PASSWORD: "" })).toBeUndefined();
	});

	it("refuses an ADMIN_PASSWORD that breaks sv-user's rules, naming it, and creates nothing", async () => {
		for (const [username, password] of [
			["short-admin", "short"],
			["named-admin", "my NAMED-ADMIN pass"],
			["long-admin", "p".repeat(129)]
		] as const) {
			await expect(createAdmin(atHome, username, password)).rejects.toThrow(/ADMIN_PASSWORD.*expected a password sv-user accepts: .+/);
			await expect(call("cn-east", "sv-region.resolve", { kind: "username", value: username })).rejects.toMatchObject({ code: 404 });
		}
	});

	it("never makes an existing user an administrator by name", async () => {
		const { id } = await call("cn-east", "sv-user.register", { username: "squatter", password: "not an admin 1" });
		expect(await createAdmin(atHome, "squatter")).toEqual({ created: false, userId: id, username: "squatter" });
		expect(await mayWriteRoles(id)).toBe(false);
	});

	it("generates passwords of 24 characters that never contain the username", () => {
		for (let i = 0; i < 500; i++) {
			const p = generatePassword("ab");
			expect(p).toHaveLength(24);
			expect(p.toLowerCase()).not.toContain("ab");
		}
	});
});

describe("REPL: admin create", () => {
	const regions = loadRegions();
	const printed: string[] = [];
	const ctx = { regions, print: (line: string) => void printed.push(line) };
	const repl = (): ServiceBroker => nodes["cn-east"]!.broker;
	const run = async (username: string, opts: { region?: string; passwordFromEnv?: boolean }, env: Record<string, string> = {}) => {
		printed.length = 0;
		await adminCreate(ctx, repl(), username, opts, env);
		return [...printed];
	};

	it("registers in the REPL's region and prints a generated password once", async () => {
		const lines = await run("repl-admin", {});
		expect(lines[0]).toMatch(/^created administrator repl-admin \([0-9a-z]{26}\) in cn-east$/);
		const password = /^password \(shown this once\): (\S{24})$/.exec(lines[1]!)?.[1];
		expect(password).toBeDefined();
		expect(await call("eu-central", "auth-jwt.login", { login: "repl-admin", password, client: "cms" })).toMatchObject({ region: "cn-east" });
		expect(await run("repl-admin", {})).toEqual([expect.stringMatching(/^repl-admin already exists \([0-9a-z]{26}\); nothing changed$/)]);
	});

	it("registers in another region with --region, the password from ADMIN_PASSWORD with --password-from-env", async () => {
		const lines = await run("eu-admin", { region: "eu-central", passwordFromEnv: true }, { ADMIN_PASSWORD: "europe admin passphrase" });
		expect(lines).toEqual([expect.stringMatching(/^created administrator eu-admin \(([0-9a-z]{26})\) in eu-central$/), "password: from ADMIN_PASSWORD"]);
		const userId = /\(([0-9a-z]{26})\)/.exec(lines[0]!)![1]!;
		expect(await call("cn-east", "sv-region.lookup", { userId })).toMatchObject({ region: "eu-central" });
		expect(await call("ap-south", "auth-jwt.login", { login: "eu-admin", password: "europe admin passphrase", client: "cms" })).toMatchObject({ userId });
		expect(await mayWriteRoles(userId, "cn-east")).toBe(true);
	});

	it("explains a missing ADMIN_PASSWORD, an unknown region and a wrong sub-command, creating nothing", async () => {
		expect(await run("nobody-admin", { passwordFromEnv: true })).toEqual(["--password-from-env: ADMIN_PASSWORD is not set"]);
		expect(await run("nobody-admin", { region: "mars-north" })).toEqual([`unknown region "mars-north"; known: ${regions.map(r => r.id).join(", ")}`]);
		const admin = replCommands(ctx).find(c => c.command.startsWith("admin "))!;
		printed.length = 0;
		await admin.action(repl(), { sub: "delete", username: "nobody-admin", options: {} } as any, undefined);
		await admin.action(repl(), { sub: "create", username: "Bad Name", options: {} } as any, undefined);
		expect(printed).toEqual([expect.stringMatching(/^usage: admin create <username>/), expect.stringMatching(/^error: /)]);
		await expect(call("cn-east", "sv-region.resolve", { kind: "username", value: "nobody-admin" })).rejects.toMatchObject({ code: 404 });
	});
});
