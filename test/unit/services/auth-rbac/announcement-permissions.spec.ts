import type { Kysely } from "kysely";
import { afterEach, describe, expect, it } from "vitest";
import { migrate } from "../../../../regions/stores/index.ts";
import type { SqlStore } from "../../../../regions/stores/sql.ts";
import { openSqlStore } from "../../../../regions/stores/sql.ts";
import { migrations } from "../../../../services/auth-rbac/migrations.ts";
import { defaultRules, grantRule, NOTICES, newRbacEnforcer } from "../../../../services/auth-rbac/model.ts";
import { PermissionIndex } from "../../../../services/auth-rbac/permission-index.ts";
import type { RbacTables } from "../../../../services/auth-rbac/policy-adapter.ts";
import { SqlPolicyAdapter } from "../../../../services/auth-rbac/policy-adapter.ts";

let store: SqlStore | undefined;
afterEach(async () => {
	await store?.close();
	store = undefined;
});

const broadcast = (r: { v1: string; v2: string }) => r.v1 === NOTICES && r.v2 === "broadcast";

/** What a database migrated before announcements holds: every default rule but `notices:broadcast`. */
const beforeAnnouncements = {
	"0001_rbac_tables": migrations["0001_rbac_tables"]!,
	"0002_default_roles": {
		async up(db: Kysely<any>) {
			await db
				.insertInto("rbac_rules")
				.values(defaultRules().filter(r => !broadcast(r)))
				.execute();
		}
	},
	"0003_wallet_permissions": migrations["0003_wallet_permissions"]!,
	"0004_notice_permissions": migrations["0004_notice_permissions"]!
};

describe("auth-rbac: the announcement permission", () => {
	it("reaches admins (not ops) of a database seeded before it, bumping the version so running nodes reload", async () => {
		store = await openSqlStore("sqlite::memory:");
		const db = store.db as Kysely<RbacTables>;
		await migrate(db, "auth-rbac", beforeAnnouncements);
		// 0004 inserts the notice rules model.ts has now, broadcast among them: as a database migrated before it holds, without.
		await db.deleteFrom("rbac_rules").where("v1", "=", NOTICES).where("v2", "=", "broadcast").execute();
		const [admin, ops] = ["a".repeat(26), "o".repeat(26)];
		await db
			.insertInto("rbac_rules")
			.values([grantRule(admin, "admin"), grantRule(ops, "ops")])
			.execute();
		const adapter = new SqlPolicyAdapter(db);
		const versionBefore = await adapter.version();
		const allowed = async () => {
			const index = await PermissionIndex.of(await newRbacEnforcer(adapter));
			return [admin, ops].map(user => index.allows(user, NOTICES, "broadcast"));
		};
		expect(await allowed()).toEqual([false, false]);

		expect(await migrate(db, "auth-rbac", migrations)).toEqual([
			"0005_announcement_permissions",
			"0006_file_permissions",
			"0007_audit_permissions",
			"0008_session_permissions"
		]);
		expect(await adapter.version()).toBe(versionBefore + 4);
		expect(await allowed()).toEqual([true, false]);
	});
});
