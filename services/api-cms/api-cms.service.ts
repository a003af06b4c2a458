import type { ServiceSchema } from "moleculer";
import { gatewayMixin } from "../../mixins/gateway.mixin.ts";
import type { GatewayContext } from "../../mixins/gateway.mixin.ts";
import type { GatewayRoute } from "../../mixins/gateway/routes.ts";
import { regionRuntimeOf } from "../../regions/runtime/region-runtime.ts";
import { action, moveId, regionId as region, resource, role, userId as id } from "../shared/fields.ts";


const staff = (resourceName: string, actionName: string) => ({ resource: resourceName, action: actionName });
const admin = (r: Omit<GatewayRoute, "tag" | "auth">): GatewayRoute => ({ ...r, tag: "admin", auth: true });

/** Staff routes; each names the permission it needs (support reads, ops moves, admin manages roles). */
const ADMIN_ROUTES: GatewayRoute[] = [
	admin({ method: "GET", path: "/api/v1/admin/users", action: "users", summary: "Users homed in a region (this one by default), by username prefix or exact e-mail / phone", permission: staff("users", "read"), status: 200 }),
	admin({ method: "GET", path: "/api/v1/admin/users/:id", action: "user", summary: "One user's profile, home and roles", permission: staff("users", "read"), status: 200 }),
	admin({ method: "POST", path: "/api/v1/admin/users/:id/move", action: "moveUser", summary: "Start rehoming a user to another region", permission: staff("users", "move"), status: 202, response: { type: "object", properties: { moveId: { type: "string" } } } }),
	admin({ method: "GET", path: "/api/v1/admin/moves/:moveId", action: "move", summary: "Progress of a move", permission: staff("moves", "read"), status: 200 }),
	admin({ method: "GET", path: "/api/v1/admin/regions", action: "adminRegions", summary: "Regions with reachability, countries and residency rules", permission: staff("regions", "read"), status: 200 }),
	admin({ method: "GET", path: "/api/v1/admin/roles", action: "roles", summary: "Every role with its direct permissions", permission: staff("roles", "read"), status: 200 }),
	admin({ method: "GET", path: "/api/v1/admin/roles/:role", action: "role", summary: "A role's permissions, inherited ones included", permission: staff("roles", "read"), status: 200 }),
	admin({ method: "POST", path: "/api/v1/admin/roles/:role/permissions", action: "addPermission", summary: "Give a role a permission (in every region)", permission: staff("permissions", "write"), status: 200 }),
	admin({ method: "DELETE", path: "/api/v1/admin/roles/:role/permissions/:resource/:permission", action: "removePermission", summary: "Take a permission from a role (in every region)", permission: staff("permissions", "write"), status: 204 }),
	admin({ method: "GET", path: "/api/v1/admin/users/:id/roles", action: "userRoles", summary: "A user's roles", permission: staff("roles", "read"), status: 200 }),
	admin({ method: "PUT", path: "/api/v1/admin/users/:id/roles/:role", action: "grantRole", summary: "Grant a user a role", permission: staff("roles", "write"), status: 200 }),
	admin({ method: "DELETE", path: "/api/v1/admin/users/:id/roles/:role", action: "revokeRole", summary: "Revoke a role from a user", permission: staff("roles", "write"), status: 204 })
];

/** The REST gateway for staff: the common routes plus user, move, region and role administration. */
const apiCms: ServiceSchema = {
	name: "api-cms",
	mixins: [gatewayMixin({ client: "cms", routes: ADMIN_ROUTES })],
	actions: {
		users: {
			params: {
				$$strict: true,
				region: { ...region, optional: true },
				q: { type: "string", min: 1, max: 64, optional: true },
				page: { type: "number", integer: true, min: 1, max: 100_000, default: 1, convert: true },
				pageSize: { type: "number", integer: true, min: 1, max: 100, default: 20, convert: true }
			},
			handler(ctx: GatewayContext<{ region?: string; q?: string; page: number; pageSize: number }>) {
				return ctx.call("sv-user.list", { ...ctx.params, region: ctx.params.region ?? regionRuntimeOf(this.broker).region.id });
			}
		},
		user: {
			params: { $$strict: true, id },
			async handler(ctx: GatewayContext<{ id: string }>) {
				const [profile, home, roles] = await Promise.all([
					ctx.call<Record<string, unknown>, unknown>("sv-user.get", { userId: ctx.params.id }),
					ctx.call<{ region: string; epoch: number; state: string }, unknown>("sv-region.lookup", { userId: ctx.params.id }),
					ctx.call<{ roles: string[] }, unknown>("auth-rbac.rolesOf", { userId: ctx.params.id })
				]);
				return { ...profile, region: home.region, epoch: home.epoch, state: home.state, roles: roles.roles };
			}
		},
		moveUser: {
			params: { $$strict: true, id, region },
			async handler(ctx: GatewayContext<{ id: string; region: string }>) {
				const started = await ctx.call<{ moveId: string }, unknown>("sv-region.startMove", { userId: ctx.params.id, to: ctx.params.region });
				ctx.meta.$responseHeaders = { Location: `/api/v1/admin/moves/${started.moveId}` };
				return started;
			}
		},
		move: {
			params: { $$strict: true, moveId },
			handler(ctx: GatewayContext<{ moveId: string }>) {
				return ctx.call("sv-region.moveProgress", { moveId: ctx.params.moveId });
			}
		},
		adminRegions: {
			params: { $$strict: true },
			handler(ctx: GatewayContext) {
				return ctx.call("sv-region.regions", {});
			}
		},
		roles: {
			params: { $$strict: true },
			handler(ctx: GatewayContext) {
				return ctx.call("auth-rbac.roles", {});
			}
		},
		role: {
			params: { $$strict: true, role },
			handler(ctx: GatewayContext<{ role: string }>) {
				return ctx.call("auth-rbac.permissionsOf", { role: ctx.params.role });
			}
		},
		addPermission: {
			params: { $$strict: true, role, resource, action },
			handler(ctx: GatewayContext<{ role: string; resource: string; action: string }>) {
				return ctx.call("auth-rbac.addPermission", ctx.params);
			}
		},
		removePermission: {
			params: { $$strict: true, role, resource, permission: action },
			async handler(ctx: GatewayContext<{ role: string; resource: string; permission: string }>) {
				await ctx.call("auth-rbac.removePermission", { role: ctx.params.role, resource: ctx.params.resource, action: ctx.params.permission });
				return null;
			}
		},
		userRoles: {
			params: { $$strict: true, id },
			handler(ctx: GatewayContext<{ id: string }>) {
				return ctx.call("auth-rbac.rolesOf", { userId: ctx.params.id });
			}
		},
		grantRole: {
			params: { $$strict: true, id, role },
			async handler(ctx: GatewayContext<{ id: string; role: string }>) {
				// Only a user that exists gets a role: its home is where the grant is stored.
				await ctx.call("sv-region.lookup", { userId: ctx.params.id });
				return ctx.call("auth-rbac.grant", { userId: ctx.params.id, role: ctx.params.role });
			}
		},
		revokeRole: {
			params: { $$strict: true, id, role },
			async handler(ctx: GatewayContext<{ id: string; role: string }>) {
				await ctx.call("auth-rbac.revoke", { userId: ctx.params.id, role: ctx.params.role });
				return null;
			}
		}
	}
};

export default apiCms;
