import type { Kysely } from "kysely";
import { afterEach, describe, expect, it } from "vitest";
import { migrate } from "../../../../regions/stores/index.ts";
import type { SqlStore } from "../../../../regions/stores/sql.ts";
import { openSqlStore } from "../../../../regions/stores/sql.ts";
import { migrations } from "../../../../services/auth-rbac/migrations.ts";
import { AUDIT, defaultRules, grantRule, newRbacEnforcer } from "../../../../services/auth-rbac/model.ts";
import { PermissionIndex } from "../../../../services/auth-rbac/permission-index.ts";
import type { RbacTables } from "../../../../services/auth-rbac/policy-adapter.ts";
import { SqlPolicyAdapter } from "../../../../services/auth-rbac/policy-adapter.ts";

let store: SqlStore | undefined;
afterEach(async () => {
	await store?.close();
	store = undefined;
});

describe("auth-rbac: the audit log's permission", () => {
	it("reaches a database seeded before it: support, ops and admin read the audit log, an ordinary user does not", async () => {
		store = await openSqlStore("sqlite::memory:");
		const db = store.db as Kysely<RbacTables>;
		// What a database migrated before sv-log holds: every migration before 0007, the default roles without `audit:read`.
		const before = Object.fromEntries(Object.entries(migrations).filter(([name]) => name < "0007"));
		before["0002_default_roles"] = {
			async up(d: Kysely<any>) {
				await d
					.insertInto("rbac_rules")
					.values(defaultRules().filter(r => r.v1 !== AUDIT))
					.execute();
			}
		};
		await migrate(db, "auth-rbac", before);
		const [support, ops, admin, plain] = ["0", "1", "2", "3"].map(c => c.repeat(26));
		const adapter = new SqlPolicyAdapter(db);
		await adapter.add([grantRule(support!, "support"), grantRule(ops!, "ops"), grantRule(admin!, "admin")]);
		const readers = async () => {
			const index = await PermissionIndex.of(await newRbacEnforcer(adapter));
			return [support, ops, admin, plain].map(user => index.allows(user!, AUDIT, "read"));
		};
		expect(await readers()).toEqual([false, false, false, false]);
		const versionBefore = await adapter.version();
		expect(await migrate(db, "auth-rbac", migrations)).toEqual(["0007_audit_permissions", "0008_session_permissions"]);
		expect(await adapter.version()).toBe(versionBefore + 2);
		expect(await readers()).toEqual([true, true, true, false]);
	});
});
