import type { Enforcer } from "casbin";
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { Errors } from "moleculer";
import { action, ROLE_NAME, resource, role, userId } from "../../kernel/fields.ts";
import { Lru } from "../../kernel/lru.ts";
import { actorOf, audit } from "../../mixins/audit.mixin.ts";
import type { DbVars } from "../../mixins/db.mixin.ts";
import { dbMixin } from "../../mixins/db.mixin.ts";
import type { MoveParticipantMethods } from "../../mixins/move-participant.mixin.ts";
import { moveParticipantMixin } from "../../mixins/move-participant.mixin.ts";
import { USER_ID } from "../../regions/directory/entries.ts";
import { envInt } from "../../regions/runtime/env.ts";
import { ImplicitRoleError, RoleNotFoundError } from "./errors.ts";
import { migrations } from "./migrations.ts";
import { grantRule, newRbacEnforcer, permissionRule, USER_ROLE } from "./model.ts";
import { PermissionIndex } from "./permission-index.ts";
import type { Change, RbacTables } from "./policy-adapter.ts";
import { SqlPolicyAdapter } from "./policy-adapter.ts";

export interface RbacSettings extends ServiceSettingSchema {
	/** Decisions cached per node; 0 turns the cache off. Default: EDGEHOME_RBAC_CACHE_SIZE, else 10 000. */
	decisionCacheSize?: number;
	/** How often a node reads `rbac_version` to catch changes it was not told about. Default: EDGEHOME_RBAC_POLL_MS, else 500. */
	pollMs?: number;
}

export interface Permission {
	resource: string;
	action: string;
}

interface Vars extends DbVars<RbacTables> {
	adapter: SqlPolicyAdapter;
	/** Replaced whole on every reload, never loaded in place. */
	enforcer: Enforcer;
	index: PermissionIndex;
	loadedVersion: number;
	/** Decisions by `userId\0resource\0action`, dropped on every reload. */
	cache: Lru<boolean>;
	pollMs: number;
	poller: NodeJS.Timeout | undefined;
	pollFailing: boolean;
	reloadRunning: Promise<void>;
	reloadQueued: Promise<void> | undefined;
}

interface Methods extends MoveParticipantMethods {
	reload(): Promise<void>;
	roleChanged(ctx: Context, action: string, p: { userId: string; role: string }, changed: boolean): Promise<{ userId: string; role: string; changed: boolean }>;
	committed(change: Change): Promise<void>;
	changePermission(op: PermissionOp, p: PermissionParams): Promise<PermissionParams & { changed: boolean }>;
	applyPermission(op: PermissionOp, p: PermissionParams): Promise<Change>;
	requireRole(role: string): Promise<void>;
	schedulePoll(): void;
}

type PermissionParams = { role: string; resource: string; action: string };
type PermissionOp = "add" | "remove";

function byResourceAction(a: Permission, b: Permission): number {
	return a.resource.localeCompare(b.resource) || a.action.localeCompare(b.action);
}

/** An integer setting: the service setting if given, else the environment, else the default. */
function intSetting(settings: RbacSettings, name: "decisionCacheSize" | "pollMs", envName: string, fallback: number, min: number): number {
	const value = settings[name];
	if (value === undefined) return envInt(process.env, envName, fallback, min);
	if (!Number.isInteger(value) || value < min) throw new Error(`auth-rbac settings.${name}: expected an integer ≥ ${min}, got ${value}`);
	return value;
}

/**
 * Role-based access control with casbin, rules in the region's SQL store. A user's role grants
 * live in the user's home region (and move with the user); permissions and role inheritance are
 * the same in every region, each change relayed to the others by a global event. Every node keeps
 * a whole enforcer in memory and converges on changes by event and, for missed events, by polling
 * one version row.
 */
const authRbac: ServiceSchema<RbacSettings, Methods, Vars> = {
	name: "auth-rbac",
	mixins: [dbMixin<RbacTables>(migrations), moveParticipantMixin()],

	actions: {
		enforce: {
			home: { param: "userId", readonly: true },
			params: { $$strict: true, userId, resource, action },
			handler(ctx: Context<{ userId: string; resource: string; action: string }>) {
				const { userId: user, resource: obj, action: act } = ctx.params;
				const key = `${user}\0${obj}\0${act}`;
				let allowed = this.cache.get(key);
				if (allowed === undefined) {
					// Synchronous, so no reload can swap the rules between deciding and caching.
					allowed = this.index.allows(user, obj, act);
					this.cache.set(key, allowed);
				}
				return { allowed };
			}
		},

		grant: {
			restricted: "grant",
			home: "userId",
			params: { $$strict: true, userId, role },
			async handler(ctx: Context<{ userId: string; role: string }>) {
				const p = ctx.params;
				await this.requireRole(p.role);
				if (p.role === USER_ROLE) return { userId: p.userId, role: p.role, changed: false };
				const change = await this.adapter.add([grantRule(p.userId, p.role)]);
				await this.committed(change);
				return this.roleChanged(ctx, "rbac.grant", p, change.rows > 0);
			}
		},

		revoke: {
			restricted: "grant",
			home: "userId",
			params: { $$strict: true, userId, role },
			async handler(ctx: Context<{ userId: string; role: string }>) {
				const p = ctx.params;
				if (p.role === USER_ROLE) throw new ImplicitRoleError(p.role);
				await this.requireRole(p.role);
				const change = await this.adapter.remove([grantRule(p.userId, p.role)]);
				await this.committed(change);
				return this.roleChanged(ctx, "rbac.revoke", p, change.rows > 0);
			}
		},

		rolesOf: {
			home: { param: "userId", readonly: true },
			params: { $$strict: true, userId },
			/** `roles`: every role the user acts with (implicit `user` and inherited ones); `direct`: the stored grants. */
			async handler(ctx: Context<{ userId: string }>) {
				const enforcer = this.enforcer;
				const direct = await enforcer.getRolesForUser(ctx.params.userId);
				const all = await enforcer.getImplicitRolesForUser(ctx.params.userId);
				return { userId: ctx.params.userId, roles: [...new Set([USER_ROLE, ...all])].sort(), direct: direct.sort() };
			}
		},

		addPermission: {
			restricted: "grant",
			params: { $$strict: true, role, resource, action },
			handler(ctx: Context<PermissionParams>) {
				return this.changePermission("add", ctx.params);
			}
		},

		removePermission: {
			restricted: "grant",
			params: { $$strict: true, role, resource, action },
			handler(ctx: Context<PermissionParams>) {
				return this.changePermission("remove", ctx.params);
			}
		},

		permissionsOf: {
			params: { $$strict: true, role },
			/**
			 * The role's permissions and those of every role it inherits, each marked with the role it
			 * comes from (null: its own). Every holder is a user, so `user`'s permissions are included.
			 */
			async handler(ctx: Context<{ role: string }>) {
				const name = ctx.params.role;
				await this.requireRole(name);
				const enforcer = this.enforcer;
				const inherits = await enforcer.getImplicitRolesForUser(name);
				if (name !== USER_ROLE && !inherits.includes(USER_ROLE)) inherits.push(USER_ROLE);
				const seen = new Set<string>();
				const permissions: (Permission & { inheritedFrom: string | null })[] = [];
				for (const from of [name, ...inherits])
					for (const [, obj = "", act = ""] of await enforcer.getPermissionsForUser(from)) {
						if (seen.has(`${obj}\0${act}`)) continue;
						seen.add(`${obj}\0${act}`);
						permissions.push({ resource: obj, action: act, inheritedFrom: from === name ? null : from });
					}
				return { role: name, inherits, permissions: permissions.sort(byResourceAction) };
			}
		},

		roles: {
			params: { $$strict: true },
			/** Every role with its own permissions and the roles it inherits directly. */
			async handler() {
				const enforcer = this.enforcer;
				const byRole = new Map<string, { role: string; inherits: string[]; permissions: Permission[] }>();
				const entry = (name: string) => {
					let e = byRole.get(name);
					if (!e) byRole.set(name, (e = { role: name, inherits: [], permissions: [] }));
					return e;
				};
				for (const [sub = "", obj = "", act = ""] of await enforcer.getPolicy()) entry(sub).permissions.push({ resource: obj, action: act });
				for (const [member = "", parent = ""] of await enforcer.getGroupingPolicy()) {
					entry(parent);
					if (!USER_ID.test(member)) entry(member).inherits.push(parent);
				}
				const roles = [...byRole.values()].sort((a, b) => a.role.localeCompare(b.role));
				for (const r of roles) {
					r.inherits.sort();
					r.permissions.sort(byResourceAction);
				}
				return { roles };
			}
		},

		stats: {
			params: { $$strict: true },
			async handler() {
				const enforcer = this.enforcer;
				const rules = (await enforcer.getPolicy()).length + (await enforcer.getGroupingPolicy()).length;
				return { version: this.loadedVersion, rules, cache: { size: this.cache.size, hits: this.cache.hits, misses: this.cache.misses } };
			}
		}
	},

	events: {
		"auth-rbac.changed": {
			params: { $$strict: true, version: { type: "number", integer: true, min: 0 } },
			async handler(ctx: Context<{ version: number }>) {
				if (ctx.params.version > this.loadedVersion) await this.reload();
			}
		},

		"auth-rbac.permissionChanged": {
			restricted: "grant",
			global: true,
			params: { $$strict: true, op: { type: "enum", values: ["add", "remove"] }, role, resource, action },
			async handler(ctx: Context<PermissionParams & { op: PermissionOp }, { $globalFrom?: string }>) {
				// The sending region applied the change before emitting; only copies from another region are news.
				if (!ctx.meta.$globalFrom) return;
				await this.applyPermission(ctx.params.op, ctx.params);
			}
		}
	},

	methods: {
		/** A grant or a revoke, recorded in the audit log; its answer. */
		async roleChanged(ctx: Context, action: string, p: { userId: string; role: string }, changed: boolean) {
			await audit(this.broker, ctx, { actor: actorOf(ctx, "auth-rbac"), action, target: p.userId, outcome: "success", detail: { role: p.role, changed } });
			return { userId: p.userId, role: p.role, changed };
		},

		/**
		 * Loads every rule into a fresh enforcer and swaps it in (casbin's loadPolicy empties the live
		 * one first, so an enforce during the read would deny everything), then drops cached decisions.
		 * Reloads run one at a time; a caller waits for one that starts after its call, and callers
		 * arriving while one is queued share it.
		 */
		reload(): Promise<void> {
			if (this.reloadQueued) return this.reloadQueued;
			const next = this.reloadRunning
				.catch(() => undefined)
				.then(async () => {
					this.reloadQueued = undefined;
					// The version is read before the rules: a write in between only costs one more reload.
					const version = await this.adapter.version();
					const enforcer = await newRbacEnforcer(this.adapter);
					const index = await PermissionIndex.of(enforcer);
					this.enforcer = enforcer;
					this.index = index;
					this.loadedVersion = version;
					this.cache.clear();
				});
			this.reloadQueued = next;
			this.reloadRunning = next;
			return next;
		},

		/** Applies a permission change here, then sends it to every region, each applying it to its own rules. */
		async changePermission(op: PermissionOp, p: PermissionParams) {
			const change = await this.applyPermission(op, p);
			// Even when nothing changed here: a region that missed an earlier copy gets it now.
			await this.broker.emit("auth-rbac.permissionChanged", { op, ...p });
			return { ...p, changed: change.rows > 0 };
		},

		/** Adds or removes a role's permission in this region's rules. */
		async applyPermission(op: PermissionOp, p: PermissionParams) {
			const rule = permissionRule(p.role, p.resource, p.action);
			const change = op === "add" ? await this.adapter.add([rule]) : await this.adapter.remove([rule]);
			await this.committed(change);
			return change;
		},

		/** After a write: this node reloads, then the region's other nodes are told (the poll covers any that miss it). */
		async committed(change: Change) {
			if (change.version === undefined) return;
			await this.reload();
			await this.broker.broadcast("auth-rbac.changed", { version: change.version });
		},

		async requireRole(name: string) {
			if (!(await this.adapter.roleExists(name))) throw new RoleNotFoundError(name);
		},

		schedulePoll() {
			this.poller = setTimeout(async () => {
				try {
					if ((await this.adapter.version()) !== this.loadedVersion) await this.reload();
					if (this.pollFailing) this.logger.info("rbac rules readable again");
					this.pollFailing = false;
				} catch (err) {
					if (!this.poller) return; // stopped meanwhile: the store may be closed
					if (!this.pollFailing) this.logger.warn(`cannot refresh rbac rules: ${(err as Error).message}`);
					this.pollFailing = true;
				}
				if (this.poller) this.schedulePoll();
			}, this.pollMs);
			this.poller.unref();
		},

		moveExport(user: string) {
			return this.adapter.grantsOf(user);
		},
		async moveImport(user: string, rows: unknown[]) {
			const rules = rows.map(row => {
				const r = row as { ptype?: unknown; v1?: unknown };
				if (r.ptype !== "g" || typeof r.v1 !== "string" || !ROLE_NAME.test(r.v1))
					throw new Errors.ValidationError("a moved row must be a role grant", "VALIDATION_ERROR", [{ field: "rows", type: "grant" }]);
				return grantRule(user, r.v1);
			});
			await this.committed(await this.adapter.replaceGrants(user, rules));
		},
		moveCount(user: string) {
			return this.adapter.countGrants(user);
		},
		async moveDelete(user: string) {
			const change = await this.adapter.removeFiltered("g", 0, [user]);
			await this.committed(change);
			return change.rows;
		}
	},

	created() {
		this.cache = new Lru<boolean>(intSetting(this.settings, "decisionCacheSize", "EDGEHOME_RBAC_CACHE_SIZE", 10_000, 0));
		this.pollMs = intSetting(this.settings, "pollMs", "EDGEHOME_RBAC_POLL_MS", 500, 50);
		this.reloadRunning = Promise.resolve();
		this.loadedVersion = -1;
		this.pollFailing = false;
	},

	async started() {
		this.adapter = new SqlPolicyAdapter(this.db);
		await this.reload();
		this.schedulePoll();
	},

	stopped() {
		clearTimeout(this.poller);
		this.poller = undefined;
	}
};

export default authRbac;
