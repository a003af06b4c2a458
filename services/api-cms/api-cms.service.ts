import type { ServiceSchema } from "moleculer";
import { action, userId as id, moveId, regionId as region, resource, role } from "../../kernel/fields.ts";
import { declared } from "../../mixins/gateway/declared-errors.ts";
import * as answer from "../../mixins/gateway/response-schemas.ts";
import type { GatewayRoute } from "../../mixins/gateway/routes.ts";
import type { GatewayContext } from "../../mixins/gateway.mixin.ts";
import { gatewayMixin } from "../../mixins/gateway.mixin.ts";
import { MoveInProgressError, ResidencyViolationError, UserNotFoundError } from "../../regions/errors.ts";
import { regionRuntimeOf } from "../../regions/runtime/region-runtime.ts";
import { ImplicitRoleError, RoleNotFoundError } from "../auth-rbac/errors.ts";
import { SERVICE_CALL_FAILURES as CALL_FAILURES, COMMON_ROUTE_ERRORS } from "../gateway-errors.ts";
import { MoveNotFoundError, UnknownRegionError } from "../sv-region/errors.ts";

/** What the admin routes may answer besides any call's failures, from the catalogues of the services they call. */
const USER_NOT_FOUND = declared(new UserNotFoundError("-"));
const RESIDENCY_VIOLATION = declared(new ResidencyViolationError("-", "-", "-"));
const MOVE_IN_PROGRESS = declared(new MoveInProgressError("-"));
const MOVE_NOT_FOUND = declared(new MoveNotFoundError("-"));
const UNKNOWN_REGION = declared(new UnknownRegionError("-"));
const ROLE_NOT_FOUND = declared(new RoleNotFoundError("-"));
const ROLE_IMPLICIT = declared(new ImplicitRoleError("-"));

const staff = (resourceName: string, actionName: string) => ({ resource: resourceName, action: actionName });
const admin = (r: Omit<GatewayRoute, "tag" | "auth">): GatewayRoute => ({ ...r, tag: "admin", auth: true });

/** Staff routes; each names the permission it needs (support reads, ops moves, admin manages roles). */
const ADMIN_ROUTES: GatewayRoute[] = [
	admin({
		method: "GET",
		path: "/api/v1/admin/users",
		name: "users",
		summary: "Users homed in a region (this one by default), by username prefix or exact e-mail / phone",
		permission: staff("users", "read"),
		status: 200,
		response: answer.userPage,
		errors: [...CALL_FAILURES, UNKNOWN_REGION],
		params: {
			$$strict: true,
			region: { ...region, optional: true },
			q: { type: "string", min: 1, max: 64, optional: true },
			page: { type: "number", integer: true, min: 1, max: 100_000, default: 1, convert: true },
			pageSize: { type: "number", integer: true, min: 1, max: 100, default: 20, convert: true }
		},
		handler(ctx: GatewayContext, params: { region?: string; q?: string; page: number; pageSize: number }) {
			return ctx.call("sv-user.list", { ...params, region: params.region ?? regionRuntimeOf(this.broker).region.id });
		}
	}),
	admin({
		method: "GET",
		path: "/api/v1/admin/users/:id",
		name: "user",
		summary: "One user's profile, home and roles",
		permission: staff("users", "read"),
		status: 200,
		response: answer.staffUserView,
		errors: [...CALL_FAILURES, USER_NOT_FOUND],
		params: { $$strict: true, id },
		async handler(ctx: GatewayContext, params: { id: string }) {
			const [profile, home, roles] = await Promise.all([
				ctx.call<Record<string, unknown>, unknown>("sv-user.get", { userId: params.id }),
				ctx.call<{ region: string; epoch: number; state: string }, unknown>("sv-region.lookup", { userId: params.id }),
				ctx.call<{ roles: string[] }, unknown>("auth-rbac.rolesOf", { userId: params.id })
			]);
			return { ...profile, region: home.region, epoch: home.epoch, state: home.state, roles: roles.roles };
		}
	}),
	admin({
		method: "POST",
		path: "/api/v1/admin/users/:id/move",
		name: "moveUser",
		summary: "Start rehoming a user to another region",
		permission: staff("users", "move"),
		status: 202,
		response: answer.moveStarted,
		errors: [...CALL_FAILURES, USER_NOT_FOUND, UNKNOWN_REGION, RESIDENCY_VIOLATION, MOVE_IN_PROGRESS],
		params: { $$strict: true, id, region },
		async handler(ctx: GatewayContext, params: { id: string; region: string }) {
			const started = await ctx.call<{ moveId: string }, unknown>("sv-region.startMove", { userId: params.id, to: params.region });
			ctx.meta.$responseHeaders = { Location: `/api/v1/admin/moves/${started.moveId}` };
			return started;
		}
	}),
	admin({
		method: "GET",
		path: "/api/v1/admin/moves/:moveId",
		name: "move",
		summary: "Progress of a move",
		permission: staff("moves", "read"),
		status: 200,
		response: answer.moveProgress,
		errors: [...CALL_FAILURES, MOVE_NOT_FOUND],
		params: { $$strict: true, moveId },
		handler(ctx: GatewayContext, params: { moveId: string }) {
			return ctx.call("sv-region.moveProgress", { moveId: params.moveId });
		}
	}),
	admin({
		method: "GET",
		path: "/api/v1/admin/regions",
		name: "adminRegions",
		summary: "Regions with reachability, countries and residency rules",
		permission: staff("regions", "read"),
		status: 200,
		response: answer.staffRegions,
		errors: CALL_FAILURES,
		params: { $$strict: true },
		handler(ctx: GatewayContext) {
			return ctx.call("sv-region.regions", {});
		}
	}),
	admin({
		method: "GET",
		path: "/api/v1/admin/roles",
		name: "roles",
		summary: "Every role with its direct permissions",
		permission: staff("roles", "read"),
		status: 200,
		response: answer.roles,
		errors: CALL_FAILURES,
		params: { $$strict: true },
		handler(ctx: GatewayContext) {
			return ctx.call("auth-rbac.roles", {});
		}
	}),
	admin({
		method: "GET",
		path: "/api/v1/admin/roles/:role",
		name: "role",
		summary: "A role's permissions, inherited ones included",
		permission: staff("roles", "read"),
		status: 200,
		response: answer.rolePermissions,
		errors: [...CALL_FAILURES, ROLE_NOT_FOUND],
		params: { $$strict: true, role },
		handler(ctx: GatewayContext, params: { role: string }) {
			return ctx.call("auth-rbac.permissionsOf", { role: params.role });
		}
	}),
	admin({
		method: "POST",
		path: "/api/v1/admin/roles/:role/permissions",
		name: "addPermission",
		summary: "Give a role a permission (in every region)",
		permission: staff("permissions", "write"),
		status: 200,
		response: answer.permissionChange,
		errors: CALL_FAILURES,
		params: { $$strict: true, role, resource, action },
		handler(ctx: GatewayContext, params: { role: string; resource: string; action: string }) {
			return ctx.call("auth-rbac.addPermission", params);
		}
	}),
	admin({
		method: "DELETE",
		path: "/api/v1/admin/roles/:role/permissions/:resource/:permission",
		name: "removePermission",
		summary: "Take a permission from a role (in every region)",
		permission: staff("permissions", "write"),
		status: 204,
		errors: CALL_FAILURES,
		params: { $$strict: true, role, resource, permission: action },
		async handler(ctx: GatewayContext, params: { role: string; resource: string; permission: string }) {
			await ctx.call("auth-rbac.removePermission", { role: params.role, resource: params.resource, action: params.permission });
			return null;
		}
	}),
	admin({
		method: "GET",
		path: "/api/v1/admin/users/:id/roles",
		name: "userRoles",
		summary: "A user's roles",
		permission: staff("roles", "read"),
		status: 200,
		response: answer.userRoles,
		errors: [...CALL_FAILURES, USER_NOT_FOUND],
		params: { $$strict: true, id },
		handler(ctx: GatewayContext, params: { id: string }) {
			return ctx.call("auth-rbac.rolesOf", { userId: params.id });
		}
	}),
	admin({
		method: "PUT",
		path: "/api/v1/admin/users/:id/roles/:role",
		name: "grantRole",
		summary: "Grant a user a role",
		permission: staff("roles", "write"),
		status: 200,
		response: answer.roleGrant,
		errors: [...CALL_FAILURES, USER_NOT_FOUND, ROLE_NOT_FOUND],
		params: { $$strict: true, id, role },
		async handler(ctx: GatewayContext, params: { id: string; role: string }) {
			// Only a user that exists gets a role: its home is where the grant is stored.
			await ctx.call("sv-region.lookup", { userId: params.id });
			return ctx.call("auth-rbac.grant", { userId: params.id, role: params.role });
		}
	}),
	admin({
		method: "DELETE",
		path: "/api/v1/admin/users/:id/roles/:role",
		name: "revokeRole",
		summary: "Revoke a role from a user",
		permission: staff("roles", "write"),
		status: 204,
		errors: [...CALL_FAILURES, USER_NOT_FOUND, ROLE_NOT_FOUND, ROLE_IMPLICIT],
		params: { $$strict: true, id, role },
		async handler(ctx: GatewayContext, params: { id: string; role: string }) {
			await ctx.call("auth-rbac.revoke", { userId: params.id, role: params.role });
			return null;
		}
	})
];

/** The REST gateway for staff: the common routes plus user, move, region and role administration. */
const apiCms: ServiceSchema = {
	name: "api-cms",
	mixins: [gatewayMixin({ client: "cms", commonErrors: COMMON_ROUTE_ERRORS, routes: ADMIN_ROUTES })]
};

export default apiCms;
