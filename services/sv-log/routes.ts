import { Readable } from "node:stream";
import type { AuditOutcome } from "../../mixins/audit.mixin.ts";
import { audit } from "../../mixins/audit.mixin.ts";
import { declared } from "../../mixins/gateway/declared-errors.ts";
import type { GatewayContext, GatewayRoute } from "../../mixins/gateway/routes.ts";
import { envInt } from "../../regions/runtime/env.ts";
import { regionRuntimeOf } from "../../regions/runtime/region-runtime.ts";
import { AUDIT } from "../auth-rbac/model.ts";
import { SERVICE_CALL_FAILURES } from "../gateway-errors.ts";
import { AuditRangeInvalidError } from "./errors.ts";
import type { FilterParams } from "./fields.ts";
import { FILTER_PARAMS, MAX_PAGE, optionalRegion } from "./fields.ts";
import type { Page } from "./sv-log.service.ts";

/**
 * The audit log over REST: staff query, export and verify it on api-cms (`audit:read`); every
 * gateway answers a user's own security log (`/api/v1/me/activity`).
 */

type Schema = Record<string, unknown>;
const string = { type: "string" } as const;
const nullableString = { type: ["string", "null"] } as const;
const timestamp = { type: "string", format: "date-time" } as const;
const record = (properties: Record<string, Schema>): Schema => ({ type: "object", required: Object.keys(properties), properties });

const auditRecord = record({
	region: string,
	seq: { type: "integer", description: "Position in the region's hash chain." },
	id: string,
	at: timestamp,
	actor: { ...string, description: "A user id, or `operator:…` / `system:…`." },
	action: { ...string, description: "What was done, e.g. `auth.login`, `money.adjust`." },
	target: nullableString,
	outcome: { enum: ["success", "failure", "refused"] },
	requestId: nullableString,
	traceId: nullableString,
	ipHash: { ...nullableString, description: "The client IP as a keyed hash (HMAC-SHA256): equal IPs, equal hashes." },
	detail: { type: ["object", "null"] },
	hash: { ...string, description: "SHA-256 of the record with the previous record's hash." }
});

const auditPage = record({
	items: { type: "array", items: auditRecord },
	nextCursor: { ...nullableString, description: "Pass as `cursor` for the next page; null on the last." },
	unavailable: { type: "array", items: string, description: "Regions that did not answer: their records are missing from this page." }
});

const verification = record({
	region: string,
	ok: { type: "boolean" },
	checked: { type: "integer", description: "Records checked." },
	from: { type: "integer", description: "The checkpoint the chain starts from (0: its beginning)." },
	to: { type: "integer", description: "The last record checked." },
	broken: {
		oneOf: [
			{ type: "null" },
			record({
				seq: { type: "integer" },
				id: nullableString,
				reason: { enum: ["checkpoint-signature", "hash-mismatch", "link-mismatch", "gap"] }
			})
		]
	}
});

const activityPage = record({
	items: {
		type: "array",
		items: record({
			at: timestamp,
			action: { enum: ["auth.login", "auth.logout", "auth.session-ended", "auth.refresh-reused"] },
			outcome: { enum: ["success", "failure", "refused"] },
			client: { ...nullableString, description: "The client type signed in with (the device)." },
			session: nullableString,
			ipHash: nullableString,
			region: string
		})
	},
	nextCursor: nullableString
});

const ndjsonLine = { ...auditRecord, description: "One record per line (newline-delimited JSON), newest first." };

const RANGE_INVALID = declared(new AuditRangeInvalidError("-", "-"), { asRaised: true });
const read = { resource: AUDIT, action: "read" };
const queryParams = { $$strict: true, region: optionalRegion, ...FILTER_PARAMS };
const admin = (r: Omit<GatewayRoute, "tag" | "auth" | "permission" | "errors">): GatewayRoute => ({
	...r,
	tag: "admin",
	auth: true,
	permission: read,
	errors: [...SERVICE_CALL_FAILURES, RANGE_INVALID]
});

/** The most records one export streams (EDGEHOME_LOG_EXPORT_MAX). */
const exportMax = () => envInt(process.env, "EDGEHOME_LOG_EXPORT_MAX", 100_000, 1, 10_000_000);

/** The pages after `first`, record by record as NDJSON lines, up to `max` records. */
async function* lines(ctx: GatewayContext, params: FilterParams & { region?: string }, first: Page, max: number): AsyncGenerator<string> {
	let page = first;
	let sent = 0;
	for (;;) {
		for (const item of page.items) {
			if (sent++ >= max) return;
			yield `${JSON.stringify(item)}\n`;
		}
		if (!page.nextCursor) return;
		page = await ctx.call<Page, unknown>("sv-log.search", { ...params, cursor: page.nextCursor, limit: MAX_PAGE });
	}
}

export const AUDIT_ROUTES: readonly GatewayRoute[] = [
	admin({
		method: "GET",
		path: "/api/v1/admin/audit",
		name: "auditLog",
		summary: "Audit records of one region, or of every reachable region merged by time (those that did not answer are listed)",
		status: 200,
		response: auditPage,
		params: queryParams,
		handler(ctx: GatewayContext, params: FilterParams & { region?: string }) {
			return ctx.call("sv-log.search", params);
		}
	}),
	admin({
		method: "GET",
		path: "/api/v1/admin/audit/export",
		name: "auditExport",
		summary: "The records a query selects, all pages, streamed as NDJSON",
		description:
			"`X-Audit-Unavailable` lists the regions that did not answer the first page. `limit` is the page size of the reads behind the stream; EDGEHOME_LOG_EXPORT_MAX bounds the records one export sends.",
		status: 200,
		mediaTypes: ["application/x-ndjson"],
		response: ndjsonLine,
		params: queryParams,
		async handler(ctx: GatewayContext, params: FilterParams & { region?: string }) {
			const first = await ctx.call<Page, unknown>("sv-log.search", params);
			ctx.meta.$responseType = "application/x-ndjson";
			ctx.meta.$responseHeaders = { "X-Audit-Unavailable": first.unavailable.join(",") };
			return Readable.from(lines(ctx, params, first, exportMax()));
		}
	}),
	admin({
		method: "GET",
		path: "/api/v1/admin/audit/verify",
		name: "auditVerify",
		summary: "Check a region's hash chain (this one by default) from its checkpoint; the first broken link if any",
		status: 200,
		response: verification,
		params: { $$strict: true, region: optionalRegion },
		handler(ctx: GatewayContext, params: { region?: string }) {
			return ctx.call("sv-log.verify", { region: params.region ?? regionRuntimeOf(this.broker).region.id });
		}
	})
];

/** The caller's own security log, on every gateway. */
export const ACTIVITY_ROUTES: readonly GatewayRoute[] = [
	{
		method: "GET",
		path: "/api/v1/me/activity",
		name: "myActivity",
		summary: "The caller's sign-ins (client and session), sign-outs and ended sessions, newest first, from the home region",
		tag: "me",
		auth: true,
		permission: { resource: "profile", action: "read" },
		status: 200,
		response: activityPage,
		errors: SERVICE_CALL_FAILURES,
		params: {
			$$strict: true,
			cursor: FILTER_PARAMS.cursor,
			limit: { ...FILTER_PARAMS.limit, max: 100, default: 20 }
		},
		handler(ctx: GatewayContext, params: { cursor?: string; limit: number }) {
			return ctx.call("sv-log.activity", { ...params, userId: ctx.locals.user.id });
		}
	}
];

/** Route names as action words: `adjustWallet` → `adjust-wallet`. */
const kebab = (name: string) => name.replace(/[A-Z]/g, c => `-${c.toLowerCase()}`);

/**
 * The routes, each write among them (every method but GET) recording itself in the audit log once
 * answered: `cms.<route name>` by the caller, on the user, role or move the path names, with the
 * request's other fields as detail (sv-log redacts them) and how it ended.
 */
export function auditWrites(routes: readonly GatewayRoute[]): GatewayRoute[] {
	return routes.map(route => {
		if (route.method === "GET") return route;
		const action = `cms.${kebab(route.name)}`;
		return {
			...route,
			async handler(ctx, params: Record<string, unknown>, res) {
				const { id, role, moveId, ...detail } = params;
				const target = [id, role, moveId].find(v => typeof v === "string") as string | undefined;
				const record = (outcome: AuditOutcome, error?: string) =>
					audit(this.broker, ctx, {
						actor: ctx.locals.user.id,
						action,
						outcome,
						clientIp: ctx.locals.clientIp,
						...(target ? { target } : {}),
						detail: { ...detail, ...(error ? { error } : {}) }
					});
				try {
					const answer = await route.handler.call(this, ctx, params, res);
					await record("success");
					return answer;
				} catch (err) {
					const e = err as { code?: number; type?: string };
					await record(e.code !== undefined && e.code >= 400 && e.code < 500 ? "refused" : "failure", e.type ?? "INTERNAL");
					throw err;
				}
			}
		};
	});
}
