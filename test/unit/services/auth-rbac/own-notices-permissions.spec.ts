import type { Kysely } from "kysely";
import { afterEach, describe, expect, it } from "vitest";
import { migrate } from "../../../../regions/stores/index.ts";
import type { SqlStore } from "../../../../regions/stores/sql.ts";
import { openSqlStore } from "../../../../regions/stores/sql.ts";
import { migrations } from "../../../../services/auth-rbac/migrations.ts";
import { defaultRules, NOTICES, newRbacEnforcer, OWN_NOTICES } from "../../../../services/auth-rbac/model.ts";
import { PermissionIndex } from "../../../../services/auth-rbac/permission-index.ts";
import type { RbacTables } from "../../../../services/auth-rbac/policy-adapter.ts";
import { SqlPolicyAdapter } from "../../../../services/auth-rbac/policy-adapter.ts";

let store: SqlStore | undefined;
afterEach(async () => {
	await store?.close();
	store = undefined;
});

const asText = (rules: { ptype: string; v0: string; v1: string; v2: string }[]) => rules.map(r => `${r.ptype},${r.v0},${r.v1},${r.v2}`).sort();

/** What a database migrated before issue #14 holds: the default roles without the notice permissions (the users' own notices, ops' dead letters). */
const beforeNotices = {
	"0001_rbac_tables": migrations["0001_rbac_tables"]!,
	"0002_default_roles": {
		async up(db: Kysely<any>) {
			await db
				.insertInto("rbac_rules")
				.values(defaultRules().filter(r => r.v1 !== OWN_NOTICES && r.v1 !== NOTICES))
				.execute();
		}
	},
	"0003_wallet_permissions": migrations["0003_wallet_permissions"]!
};

describe("auth-rbac: the users' own-notices permissions", () => {
	it("reach a database seeded before them, bumping the version so running nodes reload", async () => {
		store = await openSqlStore("sqlite::memory:");
		const db = store.db as Kysely<RbacTables>;
		await migrate(db, "auth-rbac", beforeNotices);
		const adapter = new SqlPolicyAdapter(db);
		const versionBefore = await adapter.version();
		const plainUser = "3".repeat(26);
		const allowed = async () => {
			const index = await PermissionIndex.of(await newRbacEnforcer(adapter));
			return ["read", "write", "delete"].map(action => index.allows(plainUser, OWN_NOTICES, action));
		};
		expect(await allowed()).toEqual([false, false, false]);

		expect(await migrate(db, "auth-rbac", migrations)).toEqual([
			"0004_notice_permissions",
			"0005_announcement_permissions",
			"0006_file_permissions",
			"0007_audit_permissions",
			"0008_session_permissions"
		]);
		// One bump each: 0004, 0005 (announcements), 0006 (files) and 0007 (the audit log).
		expect(await adapter.version()).toBe(versionBefore + 5);
		expect(asText(await db.selectFrom("rbac_rules").select(["ptype", "v0", "v1", "v2"]).execute())).toEqual(asText(defaultRules()));
		expect(await allowed()).toEqual([true, true, false]);
	});
});
