import type { Kysely } from "kysely";
import { afterEach, describe, expect, it } from "vitest";
import { migrate } from "../../../../regions/stores/index.ts";
import type { SqlStore } from "../../../../regions/stores/sql.ts";
import { openSqlStore } from "../../../../regions/stores/sql.ts";
import { migrations } from "../../../../services/auth-rbac/migrations.ts";
import type { Rule } from "../../../../services/auth-rbac/model.ts";
import { defaultRules, grantRule, newRbacEnforcer, OWN_WALLET, WALLET } from "../../../../services/auth-rbac/model.ts";
import { PermissionIndex } from "../../../../services/auth-rbac/permission-index.ts";
import type { RbacTables } from "../../../../services/auth-rbac/policy-adapter.ts";
import { SqlPolicyAdapter } from "../../../../services/auth-rbac/policy-adapter.ts";

let store: SqlStore | undefined;
afterEach(async () => {
	await store?.close();
	store = undefined;
});

const asText = (rules: { ptype: string; v0: string; v1: string; v2: string }[]) => rules.map(r => `${r.ptype},${r.v0},${r.v1},${r.v2}`).sort();

async function storedRules(db: Kysely<RbacTables>): Promise<string[]> {
	return asText(await db.selectFrom("rbac_rules").select(["ptype", "v0", "v1", "v2"]).execute());
}

async function version(db: Kysely<RbacTables>): Promise<number> {
	return new SqlPolicyAdapter(db).version();
}

const isWalletRule = (r: Rule) => r.v1 === WALLET || r.v1 === OWN_WALLET;

/** What a database migrated before issue #13 holds: 0002's default roles without the wallet permissions. */
const beforeWallet = {
	"0001_rbac_tables": migrations["0001_rbac_tables"]!,
	"0002_default_roles": {
		async up(db: Kysely<any>) {
			await db
				.insertInto("rbac_rules")
				.values(defaultRules().filter(r => !isWalletRule(r)))
				.execute();
			await db.updateTable("rbac_version").set({ version: 1 }).where("id", "=", 1).execute();
		}
	}
};

describe("auth-rbac migrations", () => {
	it("seed a new database with every default rule once, the wallet permissions included", async () => {
		store = await openSqlStore("sqlite::memory:");
		const db = store.db as Kysely<RbacTables>;
		expect(await migrate(db, "auth-rbac", migrations)).toEqual([
			"0001_rbac_tables",
			"0002_default_roles",
			"0003_wallet_permissions",
			"0004_notice_permissions",
			"0005_announcement_permissions",
			"0006_file_permissions",
			"0007_audit_permissions",
			"0008_session_permissions"
		]);
		expect(await storedRules(db)).toEqual(asText(defaultRules()));
	});

	it("give a database seeded before the wallet its permissions, bumping the version so running nodes reload", async () => {
		store = await openSqlStore("sqlite::memory:");
		const db = store.db as Kysely<RbacTables>;
		await migrate(db, "auth-rbac", beforeWallet);
		const supportUser = "0".repeat(26);
		const opsUser = "1".repeat(26);
		const adminUser = "2".repeat(26);
		const plainUser = "3".repeat(26);
		await new SqlPolicyAdapter(db).add([grantRule(supportUser, "support"), grantRule(opsUser, "ops"), grantRule(adminUser, "admin")]);
		const versionBefore = await version(db);
		expect((await storedRules(db)).filter(r => r.includes(`,${WALLET},`) || r.includes(`,${OWN_WALLET},`))).toEqual([]);

		// Every migration after the two beforeWallet ran, each bumping the version once.
		const later = Object.keys(migrations).slice(2);
		expect(await migrate(db, "auth-rbac", migrations)).toEqual(later);
		expect(later[0]).toBe("0003_wallet_permissions");
		expect(await version(db)).toBe(versionBefore + later.length);
		const rules = await storedRules(db);
		expect(rules.filter(r => r.startsWith("p,"))).toEqual(asText(defaultRules().filter(r => r.ptype === "p")));

		const index = await PermissionIndex.of(await newRbacEnforcer(new SqlPolicyAdapter(db)));
		const decisions = (user: string) => ["read", "adjust", "freeze", "reconcile"].map(action => [action, index.allows(user, WALLET, action)]);
		expect(decisions(supportUser)).toEqual([
			["read", true],
			["adjust", false],
			["freeze", false],
			["reconcile", false]
		]);
		expect(decisions(plainUser)).toEqual([
			["read", false],
			["adjust", false],
			["freeze", false],
			["reconcile", false]
		]);
		expect([index.allows(plainUser, OWN_WALLET, "read"), index.allows(plainUser, OWN_WALLET, "pay")]).toEqual([true, true]);
		for (const staff of [opsUser, adminUser])
			expect(decisions(staff)).toEqual([
				["read", true],
				["adjust", true],
				["freeze", true],
				["reconcile", true]
			]);
	});
});
