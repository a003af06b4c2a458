import type { ServiceBroker, ServiceSchema } from "moleculer";
import { action, userId as id, moveId, regionId as region, resource, role, sessionId } from "../../kernel/fields.ts";
import { ChannelError } from "../../mixins/channels/errors.ts";
import { consoleRoutes } from "../../mixins/gateway/console.ts";
import { declared } from "../../mixins/gateway/declared-errors.ts";
import * as answer from "../../mixins/gateway/response-schemas.ts";
import type { GatewayRoute } from "../../mixins/gateway/routes.ts";
import type { GatewayContext } from "../../mixins/gateway.mixin.ts";
import { gatewayMixin } from "../../mixins/gateway.mixin.ts";
import { MoveInProgressError, RegionUnavailableError, ResidencyViolationError, UserNotFoundError } from "../../regions/errors.ts";
import { regionRuntimeOf } from "../../regions/runtime/region-runtime.ts";
import { SessionNotFoundError } from "../auth-jwt/errors.ts";
import { ImplicitRoleError, RoleNotFoundError } from "../auth-rbac/errors.ts";
import { NOTICES, SESSIONS, WALLET } from "../auth-rbac/model.ts";
import { ADMIN_FILE_ROUTES, FILE_ROUTES } from "../file-routes.ts";
import { SERVICE_CALL_FAILURES as CALL_FAILURES, COMMON_ROUTE_ERRORS, MONEY_ERRORS as refused } from "../gateway-errors.ts";
import { NOTICE_PUSHES, NOTICE_ROUTES } from "../notice-routes.ts";
import { ACTIVITY_ROUTES, AUDIT_ROUTES, auditWrites } from "../sv-log/routes.ts";
import { CURRENCY_CODE } from "../sv-money/currencies.ts";
import { cursor, currency as entryCurrency, MAX_PAGE as MAX_ENTRIES } from "../sv-money/fields.ts";
import { MAX_BODY, MAX_TITLE } from "../sv-notice/announcements.ts";
import type { ChannelsCall } from "../sv-notice/dead-letters.ts";
import { noticeDeadLetters, replayNoticeDeadLetter } from "../sv-notice/dead-letters.ts";
import { AnnouncementNotFoundError } from "../sv-notice/errors.ts";
import { MoveNotFoundError, UnknownRegionError } from "../sv-region/errors.ts";
import { WALLET_ROUTES } from "../wallet-routes.ts";

/** What the admin routes may answer besides any call's failures, from the catalogues of the services they call. */
const USER_NOT_FOUND = declared(new UserNotFoundError("-"));
const RESIDENCY_VIOLATION = declared(new ResidencyViolationError("-", "-", "-"));
const MOVE_IN_PROGRESS = declared(new MoveInProgressError("-"));
const MOVE_NOT_FOUND = declared(new MoveNotFoundError("-"));
const UNKNOWN_REGION = declared(new UnknownRegionError("-"));
const ROLE_NOT_FOUND = declared(new RoleNotFoundError("-"));
const ROLE_IMPLICIT = declared(new ImplicitRoleError("-"));
const ANNOUNCEMENT_NOT_FOUND = declared(new AnnouncementNotFoundError("-"), { asRaised: true });
const DEAD_LETTER_NOT_FOUND = declared(new ChannelError("DEAD_LETTER_NOT_FOUND", "-"), { asRaised: true });
const SESSION_NOT_FOUND = declared(new SessionNotFoundError());

/** Why an operator moved money or froze a wallet, recorded with it. */
const reason = { type: "string", min: 1, max: 200, trim: true } as const;

const staff = (resourceName: string, actionName: string) => ({ resource: resourceName, action: actionName });
const admin = (r: Omit<GatewayRoute, "tag" | "auth">): GatewayRoute => ({ ...r, tag: "admin", auth: true });

/** The region a staff route acts in (this one by default), refused unless the cluster has it. */
function regionOf(broker: ServiceBroker, wanted: string | undefined): string {
	const runtime = regionRuntimeOf(broker);
	if (wanted !== undefined && !runtime.regions.some(r => r.id === wanted)) throw new UnknownRegionError(wanted);
	return wanted ?? runtime.region.id;
}

/** `$channels` of `region`: where that region's dead letters are. */
const channelsIn =
	(broker: ServiceBroker, region: string): ChannelsCall =>
	(action, params) =>
		regionRuntimeOf(broker).call(region, action, params);

/**
 * The caller's own roles and permissions, for a client (the admin console) to offer only what the
 * API would allow: one read of the caller's roles and one of every role's permissions.
 */
const MY_PERMISSIONS: GatewayRoute = {
	method: "GET",
	path: "/api/v1/me/permissions",
	name: "myPermissions",
	summary: "The caller's roles and the permissions they hold, inherited ones included",
	tag: "me",
	auth: true,
	permission: { resource: "profile", action: "read" },
	status: 200,
	response: answer.myPermissions,
	errors: CALL_FAILURES,
	params: { $$strict: true },
	async handler(ctx: GatewayContext) {
		const userId = ctx.locals.user.id;
		const [held, all] = await Promise.all([
			ctx.call<{ roles: string[] }, unknown>("auth-rbac.rolesOf", { userId }),
			ctx.call<{ roles: { role: string; permissions: { resource: string; action: string }[] }[] }, unknown>("auth-rbac.roles", {})
		]);
		const unique = new Map<string, { resource: string; action: string }>();
		for (const r of all.roles) if (held.roles.includes(r.role)) for (const p of r.permissions) unique.set(`${p.resource}:${p.action}`, p);
		const permissions = [...unique.values()].sort((a, b) => a.resource.localeCompare(b.resource) || a.action.localeCompare(b.action));
		return { userId, roles: held.roles, permissions };
	}
};

/** Staff routes; each names the permission it needs (support reads, ops moves users and money, admin manages roles). */
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
		method: "GET",
		path: "/api/v1/admin/users/:id/sessions",
		name: "userSessions",
		summary: "A user's live sessions, oldest first",
		permission: staff("users", "read"),
		status: 200,
		response: answer.staffSessions,
		errors: [...CALL_FAILURES, USER_NOT_FOUND],
		params: { $$strict: true, id },
		handler(ctx: GatewayContext, params: { id: string }) {
			return ctx.call("auth-jwt.sessions", { userId: params.id });
		}
	}),
	admin({
		method: "DELETE",
		path: "/api/v1/admin/users/:id/sessions/:sid",
		name: "endUserSession",
		summary: "End one of a user's sessions, as the user's own logout would",
		permission: staff(SESSIONS, "end"),
		status: 204,
		errors: [...CALL_FAILURES, USER_NOT_FOUND, SESSION_NOT_FOUND],
		params: { $$strict: true, id, sid: sessionId },
		async handler(ctx: GatewayContext, params: { id: string; sid: string }) {
			await ctx.call("auth-jwt.endSession", { userId: params.id, sid: params.sid });
			return null;
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
		path: "/api/v1/admin/regions/users",
		name: "regionCensus",
		summary: "How many users each region is home to, counted from the directory",
		permission: staff("regions", "read"),
		status: 200,
		response: answer.regionCensus,
		errors: CALL_FAILURES,
		params: { $$strict: true },
		handler(ctx: GatewayContext) {
			return ctx.call("sv-region.census", {});
		}
	}),
	admin({
		method: "GET",
		path: "/api/v1/admin/regions/:region/nodes",
		name: "regionNodes",
		summary: "The nodes a region has, as this node hears them, with the service group and services each runs",
		permission: staff("regions", "read"),
		status: 200,
		response: answer.regionNodes,
		errors: [...CALL_FAILURES, UNKNOWN_REGION],
		params: { $$strict: true, region },
		async handler(_ctx: GatewayContext, params: { region: string }) {
			const where = regionOf(this.broker, params.region);
			// A link that cannot connect in time fails with a plain error: to the caller, the region is unavailable.
			const registry = await regionRuntimeOf(this.broker)
				.registry(where)
				.catch(() => {
					throw new RegionUnavailableError(where);
				});
			const nodes = registry
				.getNodeList({ onlyAvailable: true, withServices: true })
				.filter(n => n.metadata?.region === where)
				.map(n => ({
					id: n.id as string,
					group: (n.metadata?.group as string | undefined) ?? null,
					services: (n.services ?? [])
						.map(svc => String(svc.name))
						.filter(name => !name.startsWith("$"))
						.sort()
				}));
			return { region: where, nodes: nodes.sort((a, b) => a.id.localeCompare(b.id)) };
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
	}),
	admin({
		method: "GET",
		path: "/api/v1/admin/users/:id/wallet",
		name: "userWallet",
		summary: "A user's wallet: frozen or not, and per currency the balance, what is held and what is available",
		permission: staff(WALLET, "read"),
		status: 200,
		response: answer.staffWallet,
		errors: [...CALL_FAILURES, USER_NOT_FOUND],
		params: { $$strict: true, id },
		handler(ctx: GatewayContext, params: { id: string }) {
			return ctx.call("sv-money.wallet", { userId: params.id });
		}
	}),
	admin({
		method: "GET",
		path: "/api/v1/admin/users/:id/wallet/entries",
		name: "userWalletEntries",
		summary: "A user's account entries, newest first, a page at a time",
		permission: staff(WALLET, "read"),
		status: 200,
		response: answer.entryPage,
		errors: [...CALL_FAILURES, USER_NOT_FOUND],
		params: {
			$$strict: true,
			id,
			currency: { ...entryCurrency, optional: true },
			cursor,
			limit: { type: "number", integer: true, min: 1, max: MAX_ENTRIES, default: 20, convert: true }
		},
		handler(ctx: GatewayContext, params: { id: string; currency?: string; cursor?: string; limit: number }) {
			const { id: userId, ...page } = params;
			return ctx.call("sv-money.entries", { userId, ...page });
		}
	}),
	admin({
		method: "POST",
		path: "/api/v1/admin/users/:id/wallet/adjustments",
		name: "adjustWallet",
		summary: "Credit (amount > 0) or debit (amount < 0) a user's wallet from or to issuance, with the operator and reason recorded",
		permission: staff(WALLET, "adjust"),
		status: 201,
		response: answer.transferView,
		// Taking back more than the user has is refused; a frozen wallet is still adjusted.
		errors: [...CALL_FAILURES, USER_NOT_FOUND, refused.amountInvalid, refused.currencyNotSupported, refused.insufficientFunds],
		params: {
			$$strict: true,
			id,
			// Its form is sv-money's to judge, a JSON number's too: every malformed amount gets AMOUNT_INVALID saying why.
			amount: [{ type: "string", min: 1, max: 32 }, { type: "number" }],
			currency: { type: "string", pattern: CURRENCY_CODE, messages: { stringPattern: "currency must be an ISO 4217 code, e.g. USD" } },
			reason
		},
		handler(ctx: GatewayContext, params: { id: string; amount: string | number; currency: string; reason: string }) {
			const { id: userId, ...adjustment } = params;
			return ctx.call("sv-money.adjust", { userId, ...adjustment, operator: ctx.locals.user.id });
		}
	}),
	admin({
		method: "POST",
		path: "/api/v1/admin/users/:id/wallet/freeze",
		name: "freezeWallet",
		summary: "Freeze a user's wallet: it neither pays nor receives until unfrozen",
		permission: staff(WALLET, "freeze"),
		status: 200,
		response: answer.walletFreeze,
		errors: [...CALL_FAILURES, USER_NOT_FOUND],
		params: { $$strict: true, id, reason: { ...reason, optional: true } },
		handler(ctx: GatewayContext, params: { id: string; reason?: string }) {
			return ctx.call("sv-money.freeze", { userId: params.id, reason: params.reason });
		}
	}),
	admin({
		method: "POST",
		path: "/api/v1/admin/users/:id/wallet/unfreeze",
		name: "unfreezeWallet",
		summary: "Unfreeze a user's wallet",
		permission: staff(WALLET, "freeze"),
		status: 200,
		response: answer.walletFreeze,
		errors: [...CALL_FAILURES, USER_NOT_FOUND],
		params: { $$strict: true, id },
		handler(ctx: GatewayContext, params: { id: string }) {
			return ctx.call("sv-money.unfreeze", { userId: params.id });
		}
	}),
	admin({
		method: "GET",
		path: "/api/v1/admin/wallet/reconciliation",
		name: "walletReconciliation",
		summary: "Reconcile a region's ledger (this one by default): every balance against its entries, every currency summing to zero",
		permission: staff(WALLET, "reconcile"),
		status: 200,
		response: answer.reconciliation,
		errors: [...CALL_FAILURES, UNKNOWN_REGION],
		params: { $$strict: true, region: { ...region, optional: true } },
		handler(ctx: GatewayContext, params: { region?: string }) {
			return ctx.call("sv-money.reconcile", { region: params.region ?? regionRuntimeOf(this.broker).region.id });
		}
	}),
	// The notice channels' dead letters (issue #14): e-mails and webhooks given up on, in one region.
	admin({
		method: "GET",
		path: "/api/v1/admin/notices/dead-letters",
		name: "noticeDeadLetters",
		summary: "E-mails and webhooks of notices given up on in a region (this one by default), newest first, with their last error",
		permission: staff(NOTICES, "dlq"),
		status: 200,
		response: answer.noticeDeadLetters,
		errors: [...CALL_FAILURES, UNKNOWN_REGION],
		params: {
			$$strict: true,
			region: { ...region, optional: true },
			limit: { type: "number", integer: true, min: 1, max: 100, default: 20, convert: true }
		},
		async handler(_ctx: GatewayContext, params: { region?: string; limit: number }) {
			const where = regionOf(this.broker, params.region);
			return { region: where, items: await noticeDeadLetters(channelsIn(this.broker, where), params.limit) };
		}
	}),
	admin({
		method: "POST",
		path: "/api/v1/admin/notices/dead-letters/:id/replay",
		name: "replayNoticeDeadLetter",
		summary: "Deliver a notice's dead letter again: sv-notice tries its provider anew, with fresh retries",
		permission: staff(NOTICES, "dlq"),
		status: 200,
		response: answer.noticeDeadLetterReplay,
		errors: [...CALL_FAILURES, UNKNOWN_REGION, DEAD_LETTER_NOT_FOUND],
		params: {
			$$strict: true,
			id: { type: "string", min: 1, max: 64, pattern: /^[A-Za-z0-9_-]+$/, messages: { stringPattern: "must be a dead letter id" } },
			region: { ...region, optional: true }
		},
		async handler(_ctx: GatewayContext, params: { id: string; region?: string }) {
			const where = regionOf(this.broker, params.region);
			return { ...(await replayNoticeDeadLetter(channelsIn(this.broker, where), params.id)), region: where };
		}
	}),
	// Announcements (issue #14): one inbox entry for every user of the regions named (every region by default).
	admin({
		method: "POST",
		path: "/api/v1/admin/announcements",
		name: "announce",
		summary: "Announce to every user of some regions (all by default): accepted here, fanned out in each region, resumed there after a crash",
		permission: staff(NOTICES, "broadcast"),
		status: 202,
		response: answer.announcementStarted,
		errors: [...CALL_FAILURES, UNKNOWN_REGION],
		params: {
			$$strict: true,
			title: { type: "string", min: 1, max: MAX_TITLE, trim: true },
			body: { type: "string", min: 1, max: MAX_BODY, trim: true },
			audience: { type: "object", strict: true, props: { regions: { type: "array", items: region, min: 1, max: 32, unique: true, optional: true } } }
		},
		async handler(ctx: GatewayContext, params: { title: string; body: string; audience: { regions?: string[] } }) {
			const regions = params.audience.regions ?? regionRuntimeOf(this.broker).regions.map(r => r.id);
			for (const wanted of regions) regionOf(this.broker, wanted);
			const started = await ctx.call<{ id: string }, unknown>("sv-notice.announce", { title: params.title, body: params.body, regions });
			ctx.meta.$responseHeaders = { Location: `/api/v1/admin/announcements/${started.id}` };
			return started;
		}
	}),
	admin({
		method: "GET",
		path: "/api/v1/admin/announcements/:id",
		name: "announcement",
		summary: "Progress of an announcement in each region it goes to (a region not heard from yet shows nothing done)",
		permission: staff(NOTICES, "broadcast"),
		status: 200,
		response: answer.announcementProgress,
		errors: [...CALL_FAILURES, ANNOUNCEMENT_NOT_FOUND],
		params: {
			$$strict: true,
			id: { type: "string", max: 36, pattern: /^[0-9a-f-]{36}$/, messages: { stringPattern: "must be an announcement id" } }
		},
		handler(ctx: GatewayContext, params: { id: string }) {
			return ctx.call("sv-notice.announcement", { id: params.id });
		}
	})
];

/** The REST gateway for staff: the common routes, the caller's own wallet and notices (as every gateway has them), plus user, move, region, role and wallet administration, and the admin console that uses them. */
const apiCms: ServiceSchema = {
	name: "api-cms",
	mixins: [
		gatewayMixin({
			client: "cms",
			commonErrors: COMMON_ROUTE_ERRORS,
			// Every write of this gateway leaves an audit record (services/sv-log).
			routes: auditWrites([
				...ADMIN_ROUTES,
				MY_PERMISSIONS,
				...consoleRoutes(),
				...ADMIN_FILE_ROUTES,
				...AUDIT_ROUTES,
				...WALLET_ROUTES,
				...NOTICE_ROUTES,
				...FILE_ROUTES,
				...ACTIVITY_ROUTES
			])
		}),
		NOTICE_PUSHES
	]
};

export default apiCms;
