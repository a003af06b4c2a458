import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../../app/node.ts";
import { hashPassword, SCRYPT, verifyPassword } from "../../../services/sv-user/passwords.ts";
import type { EmbeddedRegions } from "../../harness/embedded-regions.ts";
import { REGION_IDS as ids, startEmbeddedRegions } from "../../harness/embedded-regions.ts";

const nodes: Record<string, RegionNode> = {};
let cluster: EmbeddedRegions | undefined;
const call = <T = any>(from: string, action: string, params: unknown) => nodes[from]!.broker.call<T, unknown>(action, params);

/** Every users row in every region's own database. */
async function usersByRegion(): Promise<Record<string, Record<string, unknown>[]>> {
	const out: Record<string, Record<string, unknown>[]> = {};
	for (const id of ids) out[id] = await nodes[id]!.stores.sql.db.selectFrom("users").selectAll().execute();
	return out;
}

beforeAll(async () => {
	cluster = await startEmbeddedRegions({ namespacePrefix: "svuser-", services: ["sv-region", "sv-user"] });
	Object.assign(nodes, cluster.nodes);
});

afterAll(() => cluster?.stop());

describe("sv-user", () => {
	it("registers at one region a user of another and keeps the row only in the home region", async () => {
		const res = await call("cn-east", "sv-user.register", {
			username: "hans",
			password: "correct horse 1",
			email: "Hans@Example.de",
			phone: "+4930123456",
			country: "DE"
		});
		expect(res).toMatchObject({ username: "hans", region: "eu-central" });
		const rows = await usersByRegion();
		expect(rows["cn-east"]).toHaveLength(0);
		expect(rows["ap-south"]).toHaveLength(0);
		expect(rows["eu-central"]!.map(r => r.id)).toEqual([res.id]);
		for (const from of ids)
			expect(await call(from, "sv-user.get", { userId: res.id })).toMatchObject({
				id: res.id,
				username: "hans",
				email: "Hans@Example.de",
				phone: "+4930123456",
				country: "DE"
			});
	});

	it("stores e-mail and phone encrypted, with the key id beside them, and the password as scrypt", async () => {
		const row = (await usersByRegion())["eu-central"]!.find(r => r.username === "hans")!;
		expect(JSON.stringify(row)).not.toMatch(/example\.de|4930123456|correct horse/i);
		expect(row).toMatchObject({ email_kid: "t1", phone_kid: "t1" });
		expect(row.password_hash).toMatch(new RegExp(`^scrypt\\$${SCRYPT.N}\\$${SCRYPT.r}\\$${SCRYPT.p}\\$`));
	});

	it("checks a password from any region, by username, e-mail or phone", async () => {
		const { id } = await call("eu-central", "sv-user.get", {
			userId: (await call("ap-south", "sv-region.resolve", { kind: "username", value: "hans" })).userId
		});
		for (const login of ["hans", "hans@example.de", "+4930123456"])
			expect(await call("ap-south", "sv-user.checkPassword", { login, password: "correct horse 1" })).toEqual({ userId: id });
	});

	it("answers a wrong password and an unknown login with the same error, in similar time", async () => {
		const timed = async (login: string) => {
			const started = performance.now();
			const err = await call("cn-east", "sv-user.checkPassword", { login, password: "wrong password" }).catch(e => e);
			return { err: { type: err.type, code: err.code, message: err.message }, ms: performance.now() - started };
		};
		await timed("nobody-here");
		const wrong = await timed("hans");
		const unknown = await timed("nobody-here");
		expect(wrong.err).toEqual({ type: "INVALID_CREDENTIALS", code: 401, message: "login or password is wrong" });
		expect(unknown.err).toEqual(wrong.err);
		// Both paths run one scrypt: neither may be several times the other.
		expect(Math.max(wrong.ms, unknown.ms) / Math.min(wrong.ms, unknown.ms)).toBeLessThan(3);
	});

	it("refuses a taken username or e-mail with its own code and leaves nothing behind", async () => {
		const before = await usersByRegion();
		await expect(call("ap-south", "sv-user.register", { username: "hans", password: "another pass 1" })).rejects.toMatchObject({
			code: 409,
			type: "USERNAME_TAKEN"
		});
		await expect(call("ap-south", "sv-user.register", { username: "hans2", password: "another pass 1", email: "hans@example.de" })).rejects.toMatchObject({
			code: 409,
			type: "EMAIL_TAKEN"
		});
		expect(await usersByRegion()).toEqual(before);
		await expect(call("ap-south", "sv-region.resolve", { kind: "username", value: "hans2" })).rejects.toMatchObject({ code: 404 });
	});

	describe("update", () => {
		let id: string;
		beforeAll(async () => {
			id = (
				await call("cn-east", "sv-user.register", {
					username: "changer",
					password: "updating pass 1",
					email: "old@example.com",
					phone: "+819012345678",
					country: "JP"
				})
			).id;
		});

		it("changes the e-mail from any region: the new one logs in, the old one no longer does", async () => {
			const res = await call("eu-central", "sv-user.update", { userId: id, email: "new@example.com" });
			expect(res).toMatchObject({ id, email: "new@example.com", phone: "+819012345678" });
			expect(await call("ap-south", "sv-user.checkPassword", { login: "new@example.com", password: "updating pass 1" })).toEqual({ userId: id });
			await expect(call("ap-south", "sv-user.checkPassword", { login: "old@example.com", password: "updating pass 1" })).rejects.toMatchObject({
				type: "INVALID_CREDENTIALS"
			});
			const row = (await usersByRegion())["cn-east"]!.find(r => r.id === id)!;
			expect(JSON.stringify(row)).not.toContain("new@example.com");
		});

		it("removes the phone with null and frees it for someone else", async () => {
			expect(await call("cn-east", "sv-user.update", { userId: id, phone: null })).toMatchObject({ phone: null });
			await expect(call("cn-east", "sv-region.resolve", { kind: "phone", value: "+819012345678" })).rejects.toMatchObject({ code: 404 });
			await expect(
				call("ap-south", "sv-user.register", { username: "phone-taker", password: "another pass 1", phone: "+819012345678" })
			).resolves.toHaveProperty("id");
		});

		it("refuses an e-mail another user holds with EMAIL_TAKEN and changes nothing", async () => {
			const before = await usersByRegion();
			await expect(call("cn-east", "sv-user.update", { userId: id, email: "hans@example.de" })).rejects.toMatchObject({ code: 409, type: "EMAIL_TAKEN" });
			expect(await usersByRegion()).toEqual(before);
			expect(await call("cn-east", "sv-user.get", { userId: id })).toMatchObject({ email: "new@example.com" });
		});

		it("refuses fields that are not changeable here, and an empty change", async () => {
			for (const params of [
				{ userId: id, username: "other" },
				{ userId: id, password: "new password 1" },
				{ userId: id, region: "eu-central" },
				{ userId: id }
			])
				await expect(call("cn-east", "sv-user.update", params)).rejects.toMatchObject({ code: 422, type: "VALIDATION_ERROR" });
		});
	});

	it("refuses to open an e-mail swapped into another user's row, instead of showing that user's address", async () => {
		const a = await call("cn-east", "sv-user.register", { username: "swap-a", password: "sealed pass 1", email: "swap-a@example.jp", country: "JP" });
		const b = await call("cn-east", "sv-user.register", { username: "swap-b", password: "sealed pass 1", email: "swap-b@example.jp", country: "JP" });
		const db = nodes["cn-east"]!.stores.sql.db;
		const rowOf = (id: string) => db.selectFrom("users").select(["email_enc", "email_kid"]).where("id", "=", id).executeTakeFirstOrThrow();
		const [ra, rb] = await Promise.all([rowOf(a.id), rowOf(b.id)]);
		await db.updateTable("users").set(rb).where("id", "=", a.id).execute();
		await db.updateTable("users").set(ra).where("id", "=", b.id).execute();
		for (const [victim, other] of [
			[a, "swap-b@example.jp"],
			[b, "swap-a@example.jp"]
		] as const) {
			const err = await call("ap-south", "sv-user.get", { userId: victim.id }).catch(e => e);
			expect(err).toMatchObject({ code: 500, type: "SEALED_VALUE_INVALID", data: { table: "users", field: "email", row: victim.id } });
			expect(err.message).toMatch(/sealed for another row or field/);
			expect(JSON.stringify(err)).not.toContain(other);
		}
		// Put back where they belong, each opens again.
		await db.updateTable("users").set(ra).where("id", "=", a.id).execute();
		await db.updateTable("users").set(rb).where("id", "=", b.id).execute();
		expect(await call("ap-south", "sv-user.get", { userId: a.id })).toMatchObject({ email: "swap-a@example.jp" });
	});

	it("moves with its owner: the profile row follows a rehoming", async () => {
		const { id } = await call("ap-south", "sv-user.register", { username: "mover", password: "moving pass 1", country: "SG" });
		await call("cn-east", "sv-region.move", { userId: id, to: "cn-east" });
		const rows = await usersByRegion();
		expect(rows["ap-south"]!.some(r => r.id === id)).toBe(false);
		expect(rows["cn-east"]!.some(r => r.id === id)).toBe(true);
		expect(await call("eu-central", "sv-user.checkPassword", { login: "mover", password: "moving pass 1" })).toEqual({ userId: id });
	});

	describe("bad input is refused and stores nothing", () => {
		const cases: [string, Record<string, unknown>][] = [
			["role", { username: "eve", password: "long enough 1", role: "admin" }],
			["region", { username: "eve", password: "long enough 1", region: "cn-east" }],
			["id", { username: "eve", password: "long enough 1", id: "0".repeat(26) }],
			["a short username", { username: "ev", password: "long enough 1" }],
			["an upper-case username", { username: "Eve", password: "long enough 1" }],
			["a 33-character username", { username: "e".repeat(33), password: "long enough 1" }],
			["a 7-character password", { username: "eve", password: "short12" }],
			["a 129-character password", { username: "eve", password: "p".repeat(129) }],
			["a password containing the username", { username: "eve", password: "i-am-EVE-123" }],
			["a malformed e-mail", { username: "eve", password: "long enough 1", email: "eve@" }],
			["a phone not in E.164", { username: "eve", password: "long enough 1", phone: "0123 456" }],
			["a three-letter country", { username: "eve", password: "long enough 1", country: "DEU" }],
			["an unassigned country", { username: "eve", password: "long enough 1", country: "ZZ" }],
			["a username of punctuation only", { username: "...", password: "long enough 1" }],
			["a username ending in a dot", { username: "eve.", password: "long enough 1" }],
			["a common password", { username: "eve", password: "Qwertyuiop" }],
			["an e-mail holding NUL", { username: "eve", password: "long enough 1", email: "eve\u0000@example.com" }]
		];
		for (const [name, params] of cases)
			it(`refuses ${name}`, async () => {
				const before = await usersByRegion();
				await expect(call("cn-east", "sv-user.register", params)).rejects.toMatchObject({ code: 422, type: "VALIDATION_ERROR" });
				expect(await usersByRegion()).toEqual(before);
				await expect(call("cn-east", "sv-region.resolve", { kind: "username", value: "eve" })).rejects.toMatchObject({ code: 404 });
			});
	});
});

describe("sv-user.list", () => {
	const list = (from: string, params: Record<string, unknown>) => call(from, "sv-user.list", params);
	const names = (res: { items: { username: string }[] }) => res.items.map(u => u.username);
	const ids: Record<string, string> = {};

	beforeAll(async () => {
		const users: [string, Record<string, unknown>][] = [
			["ls-bob", { country: "SG", email: "bob@example.sg" }],
			["ls-ann", { country: "SG", phone: "+6591110000" }],
			["ls_cat", { country: "SG" }],
			["lsxcat", { country: "SG" }],
			["ls-dan", { country: "DE", email: "dan@example.de" }]
		];
		for (const [username, extra] of users) ids[username] = (await call("cn-east", "sv-user.register", { username, password: "listed pass 1", ...extra })).id;
	});

	it("lists the users homed in a region, from any region, by username, with profiles", async () => {
		for (const from of ["cn-east", "ap-south", "eu-central"]) {
			const res = await list(from, { region: "ap-south", q: "ls" });
			expect(res).toMatchObject({ total: 4, page: 1, pageSize: 20, region: "ap-south" });
			expect(names(res)).toEqual(["ls-ann", "ls-bob", "ls_cat", "lsxcat"]);
			expect(res.items[0]).toEqual({
				id: ids["ls-ann"],
				username: "ls-ann",
				email: null,
				phone: "+6591110000",
				country: "SG",
				createdAt: expect.any(String),
				region: "ap-south"
			});
		}
		const all = await list("eu-central", { region: "ap-south", pageSize: 100 });
		const rows = await nodes["ap-south"]!.stores.sql.db.selectFrom("users").select("username").orderBy("username").execute();
		expect(all.total).toBe(rows.length);
		expect(names(all)).toEqual(rows.map(r => r.username));
	});

	it("pages, converting page numbers given as text", async () => {
		const first = await list("cn-east", { region: "ap-south", q: "ls", pageSize: "3" });
		const second = await list("cn-east", { region: "ap-south", q: "ls", pageSize: 3, page: "2" });
		expect(names(first)).toEqual(["ls-ann", "ls-bob", "ls_cat"]);
		expect(second).toMatchObject({ total: 4, page: 2, pageSize: 3 });
		expect(names(second)).toEqual(["lsxcat"]);
		expect((await list("cn-east", { region: "ap-south", q: "ls", page: 9 })).items).toEqual([]);
	});

	it("takes a prefix's wildcards literally", async () => {
		expect(names(await list("cn-east", { region: "ap-south", q: "ls_" }))).toEqual(["ls_cat"]);
		expect(names(await list("cn-east", { region: "ap-south", q: "LS-A" }))).toEqual(["ls-ann"]);
		expect((await list("cn-east", { region: "ap-south", q: "%" })).total).toBe(0);
		expect((await list("cn-east", { region: "ap-south", q: "ls%cat" })).total).toBe(0);
	});

	it("finds an exact e-mail or phone through the directory, only in the user's home region", async () => {
		expect(names(await list("eu-central", { region: "ap-south", q: "BOB@example.sg" }))).toEqual(["ls-bob"]);
		expect(names(await list("eu-central", { region: "ap-south", q: "+6591110000" }))).toEqual(["ls-ann"]);
		expect(await list("cn-east", { region: "ap-south", q: "dan@example.de" })).toEqual({ items: [], total: 0, page: 1, pageSize: 20, region: "ap-south" });
		expect(names(await list("cn-east", { region: "eu-central", q: "dan@example.de" }))).toEqual(["ls-dan"]);
		expect((await list("cn-east", { region: "ap-south", q: "nobody@example.sg" })).total).toBe(0);
		// Not a username prefix: "ls-bob@" names no e-mail.
		expect((await list("cn-east", { region: "ap-south", q: "ls-bob@" })).total).toBe(0);
	});

	it("refuses an unknown region with UNKNOWN_REGION and bad paging or filters with VALIDATION_ERROR", async () => {
		await expect(list("cn-east", { region: "mars-north" })).rejects.toMatchObject({ code: 422, type: "UNKNOWN_REGION" });
		const bad = [
			{},
			{ region: "ap-south", pageSize: 101 },
			{ region: "ap-south", pageSize: 0 },
			{ region: "ap-south", page: 0 },
			{ region: "ap-south", q: "x".repeat(65) },
			{ region: "ap-south", sort: "email" }
		];
		for (const params of bad) await expect(list("cn-east", params)).rejects.toMatchObject({ code: 422, type: "VALIDATION_ERROR" });
	});
});

describe("passwords", () => {
	it("hash with a fresh salt each time and verify only the right password", async () => {
		const [a, b] = await Promise.all([hashPassword("same password"), hashPassword("same password")]);
		expect(a).not.toBe(b);
		expect(await verifyPassword("same password", a)).toBe(true);
		expect(await verifyPassword("same passwore", a)).toBe(false);
		expect(await verifyPassword("same password", "md5$abc")).toBe(false);
	});
});
