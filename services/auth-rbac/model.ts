import type { Adapter, Enforcer } from "casbin";
import { newEnforcer, newModelFromString } from "casbin";

/** Every user holds this role without a stored rule, so millions of ordinary users cost nothing. */
export const USER_ROLE = "user";

/**
 * RBAC with a role hierarchy. A subject is a user id or a role; `g` links a user to a role or a
 * role to the role it inherits. The matcher grants the `user` role's permissions to everyone and
 * lets a permission on action `*` cover every action on its resource. casbin evaluates it for every
 * stored permission, so the cheap comparisons come first and the role lookup `g` runs only for
 * permissions on the requested resource (a third faster with 10 000 rules).
 */
export const MODEL_TEXT = `
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.obj == p.obj && (r.act == p.act || p.act == "*") && (p.sub == "${USER_ROLE}" || g(r.sub, p.sub))
`;

/** One stored casbin rule: `p` (sub, obj, act) or `g` (member, role; v2 empty). */
export interface Rule {
	ptype: "p" | "g";
	v0: string;
	v1: string;
	v2: string;
}

/** The resource of sv-money's staff permissions (`wallet:read`, `wallet:adjust`, …). */
export const WALLET = "wallet";
/** The caller's own wallet (`own-wallet:read`, `own-wallet:pay`): a resource of its own, since every user holds the `user` role's permissions. */
export const OWN_WALLET = "own-wallet";

/** The resource of sv-notice's staff permissions (`notices:dlq`: the notice channels' dead letters; `notices:broadcast`: announcements). */
export const NOTICES = "notices";
/** The caller's own notices and notice preferences (`own-notices:read`, `own-notices:write`). */
export const OWN_NOTICES = "own-notices";

/** The resource of sv-oss's staff permission (`files:read`: a user's files and quota use). */
export const FILES = "files";
/** The caller's own files (`own-files:read`, `own-files:write`). */
export const OWN_FILES = "own-files";

/** Users' sessions: `sessions:end` ends one of any user's (a user's own are `profile:update`). */
export const SESSIONS = "sessions";

/** The resource of sv-log's staff permission (`audit:read`: query, export and verify the audit log). */
export const AUDIT = "audit";

export interface RoleDefault {
	role: string;
	/** Roles this one inherits (beyond `user`, which every holder has anyway). */
	inherits: string[];
	permissions: { resource: string; action: string }[];
}

/** The roles every region starts with (seeded by migration 0002; added to older databases: the wallet permissions by 0003, the notice ones by 0004, announcements by 0005, the file ones by 0006, the audit log's by 0007, ending sessions by 0008). */
export const DEFAULT_ROLES: readonly RoleDefault[] = [
	{
		role: USER_ROLE,
		inherits: [],
		permissions: [
			{ resource: "profile", action: "read" },
			{ resource: "profile", action: "update" },
			{ resource: OWN_WALLET, action: "read" },
			{ resource: OWN_WALLET, action: "pay" },
			{ resource: OWN_NOTICES, action: "read" },
			{ resource: OWN_NOTICES, action: "write" },
			{ resource: OWN_FILES, action: "read" },
			{ resource: OWN_FILES, action: "write" }
		]
	},
	{
		role: "support",
		inherits: [],
		permissions: [
			{ resource: "users", action: "read" },
			{ resource: "moves", action: "read" },
			{ resource: "regions", action: "read" },
			{ resource: WALLET, action: "read" },
			{ resource: FILES, action: "read" },
			// Who did what, never secrets or contact details (sv-log redacts them): support answers "what happened to my account".
			{ resource: AUDIT, action: "read" }
		]
	},
	{
		role: "ops",
		inherits: ["support"],
		permissions: [
			{ resource: "users", action: "move" },
			{ resource: "moves", action: "write" },
			{ resource: WALLET, action: "adjust" },
			{ resource: WALLET, action: "freeze" },
			// Signs a user out of a device (a lost phone, a shared computer): a change to the account, so not support's.
			{ resource: SESSIONS, action: "end" },
			// A region-wide check that reads every account, system ones included: an operations task, not a support one.
			{ resource: WALLET, action: "reconcile" },
			// Failed e-mails and webhooks: their payloads are users' notices, and replaying one sends it.
			{ resource: NOTICES, action: "dlq" }
		]
	},
	{
		role: "admin",
		inherits: ["ops"],
		permissions: [
			{ resource: "roles", action: "read" },
			{ resource: "roles", action: "write" },
			{ resource: "permissions", action: "write" },
			// An announcement reaches every user of the regions it names: admin's alone, not an operations task.
			{ resource: NOTICES, action: "broadcast" }
		]
	}
];

export const permissionRule = (role: string, resource: string, action: string): Rule => ({ ptype: "p", v0: role, v1: resource, v2: action });
export const grantRule = (member: string, role: string): Rule => ({ ptype: "g", v0: member, v1: role, v2: "" });

/** DEFAULT_ROLES as stored rules. */
export function defaultRules(): Rule[] {
	return DEFAULT_ROLES.flatMap(r => [
		...r.permissions.map(p => permissionRule(r.role, p.resource, p.action)),
		...r.inherits.map(parent => grantRule(r.role, parent))
	]);
}

/** A fresh enforcer of this model with the adapter's rules loaded (what every reload builds). */
export function newRbacEnforcer(adapter: Adapter): Promise<Enforcer> {
	return newEnforcer(newModelFromString(MODEL_TEXT), adapter);
}
