import type { Kysely } from "kysely";
import type { Migrations } from "../../regions/stores/index.ts";
import type { Rule } from "./model.ts";
import { AUDIT, defaultRules, FILES, NOTICES, OWN_FILES, OWN_NOTICES, OWN_WALLET, SESSIONS, WALLET } from "./model.ts";

/** The default roles' permissions on these resources, which databases seeded before them lack. */
const rulesOn = (...resources: string[]): Rule[] => defaultRules().filter(r => r.ptype === "p" && resources.includes(r.v1));
/** sv-money's (issue #13). */
const walletRules = () => rulesOn(WALLET, OWN_WALLET);
/** sv-notice's (issue #14): the caller's own notices, and ops' dead letters. */
const noticeRules = () => rulesOn(OWN_NOTICES, NOTICES);
/** Announcements (issue #14): `notices:broadcast`. */
const broadcastRules = () => rulesOn(NOTICES).filter(r => r.v2 === "broadcast");
/** sv-oss's (issue #15): the caller's own files, and support's view of a user's. */
const fileRules = () => rulesOn(OWN_FILES, FILES);
/** sv-log's (issue #15): `audit:read`. */
const auditRules = () => rulesOn(AUDIT);
/** The admin console's (issue #16): `sessions:end`. */
const sessionRules = () => rulesOn(SESSIONS);

async function bumpVersion(db: Kysely<any>): Promise<void> {
	await db
		.updateTable("rbac_version")
		.set(eb => ({ version: eb("version", "+", 1) }))
		.where("id", "=", 1)
		.execute();
}

async function deleteRules(db: Kysely<any>, rules: Rule[]): Promise<void> {
	for (const r of rules)
		await db.deleteFrom("rbac_rules").where("ptype", "=", r.ptype).where("v0", "=", r.v0).where("v1", "=", r.v1).where("v2", "=", r.v2).execute();
}

/**
 * Default rules added after 0002 seeded a database: inserted where absent, since a database seeded
 * by 0002 after they were added has them already.
 */
function defaultsAdded(rules: () => Rule[]) {
	return {
		async up(db: Kysely<any>) {
			await db.insertInto("rbac_rules").ignore().values(rules()).execute();
			await bumpVersion(db);
		},
		async down(db: Kysely<any>) {
			await deleteRules(db, rules());
			await bumpVersion(db);
		}
	};
}

export const migrations: Migrations = {
	"0001_rbac_tables": {
		async up(db: Kysely<any>) {
			await db.schema
				.createTable("rbac_rules")
				.addColumn("id", "integer", c => c.primaryKey().autoIncrement())
				.addColumn("ptype", "varchar(2)", c => c.notNull())
				.addColumn("v0", "varchar(64)", c => c.notNull())
				.addColumn("v1", "varchar(64)", c => c.notNull())
				.addColumn("v2", "varchar(64)", c => c.notNull().defaultTo(""))
				.addUniqueConstraint("rbac_rules_rule", ["ptype", "v0", "v1", "v2"])
				.execute();
			// "Does this role exist?" looks a role up as the parent of a g rule.
			await db.schema.createIndex("rbac_rules_parent").on("rbac_rules").columns(["ptype", "v1"]).execute();
			// One row, bumped by every write, so a node can tell with one read that its rules are stale.
			await db.schema
				.createTable("rbac_version")
				.addColumn("id", "integer", c => c.primaryKey())
				.addColumn("version", "bigint", c => c.notNull())
				.execute();
			await db.insertInto("rbac_version").values({ id: 1, version: 0 }).execute();
		},
		async down(db: Kysely<any>) {
			await db.schema.dropTable("rbac_version").execute();
			await db.schema.dropTable("rbac_rules").execute();
		}
	},
	"0002_default_roles": {
		// The defaults as model.ts has them when this runs; changing them later needs a new migration.
		async up(db: Kysely<any>) {
			await db.insertInto("rbac_rules").values(defaultRules()).execute();
			await bumpVersion(db);
		},
		async down(db: Kysely<any>) {
			await deleteRules(db, defaultRules());
			await bumpVersion(db);
		}
	},
	"0003_wallet_permissions": defaultsAdded(walletRules),
	"0004_notice_permissions": defaultsAdded(noticeRules),
	"0005_announcement_permissions": defaultsAdded(broadcastRules),
	"0006_file_permissions": defaultsAdded(fileRules),
	"0007_audit_permissions": defaultsAdded(auditRules),
	"0008_session_permissions": defaultsAdded(sessionRules)
};
