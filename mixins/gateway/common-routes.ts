import { Errors } from "moleculer";
import { country, email, givenPassword, login, password, phone, sessionId, username } from "../../kernel/fields.ts";
import { readiness } from "../../regions/runtime/health.ts";
import { regionRuntimeOf } from "../../regions/runtime/region-runtime.ts";
import type { DeclaredError } from "./declared-errors.ts";
import { CALL_FAILURES, declared } from "./declared-errors.ts";
import { DOCS_CSP, readDocsFile } from "./docs.ts";
import { unauthorized } from "./edge-checks.ts";
import { openApiDocument } from "./openapi.ts";
import * as answer from "./response-schemas.ts";
import type { GatewayContext, GatewayRoute, GatewayService } from "./routes.ts";
import { DOCUMENT_HEADERS } from "./security-headers.ts";

/** The routes every gateway answers, whatever its client type. */

/** The routes below that call services, by name. */
type CallingRoute = "register" | "login" | "refresh" | "logout" | "me" | "updateMe" | "mySessions" | "endMySession" | "regions" | "jwks";

/**
 * What the services behind the common routes may answer, from those services' own catalogues:
 * handed in by the gateway services, since a mixin imports no service. `anyCall`: what any call
 * may end in besides the region runtime's answers (CALL_FAILURES), e.g. the token check's.
 */
export type CommonRouteErrors = Record<CallingRoute | "anyCall", readonly DeclaredError[]>;

/** Answered by the gateway itself: no Swagger UI file of that name. */
const noSuchFile = () => new Errors.MoleculerClientError("no such file", 404, "NOT_FOUND");

/** The fields of the token answer, as its response schema lists them. */
const TOKEN_FIELDS = answer.tokens.required as string[];

/** What a client gets of auth-jwt's tokens: the fields of the token answer and nothing else. */
export function publicTokens(tokens: Record<string, unknown>): Record<string, unknown> {
	return Object.fromEntries(TOKEN_FIELDS.map(field => [field, tokens[field]]));
}

/** The profile with its home region, from this node's directory cache (just used to route the call): no wait when it is cached. */
function withRegion(service: GatewayService, ctx: GatewayContext, profile: Record<string, unknown>) {
	const { user } = ctx.locals;
	const directory = regionRuntimeOf(service.broker).directory;
	const cached = directory.cached(user.id);
	if (cached) return profileIn(profile, cached.region);
	return directory.home(user.id).then(home => profileIn(profile, home?.region ?? user.region));
}

/** The profile as answered: its public fields and the region it lives in. */
function profileIn(profile: Record<string, unknown>, region: string) {
	return {
		id: profile.id,
		username: profile.username,
		email: profile.email,
		phone: profile.phone,
		country: profile.country,
		region,
		createdAt: profile.createdAt
	};
}

/** The common routes, each declaring what it may answer: the region runtime's failures and the handed-in catalogue errors. */
export function commonRoutes(handedIn: CommonRouteErrors): GatewayRoute[] {
	const errors = (route: CallingRoute) => [...CALL_FAILURES, ...handedIn.anyCall, ...handedIn[route]];
	return [
		{
			method: "POST",
			path: "/api/v1/auth/register",
			name: "register",
			summary: "Register a user (homed by country, else in this region)",
			tag: "auth",
			auth: false,
			status: 201,
			response: answer.registeredUser,
			errors: errors("register"),
			params: { $$strict: true, username, password, email, phone, country },
			async handler(ctx, params: { username: string; password: string }) {
				const user = await ctx.call<{ id: string; username: string; region: string }, unknown>("sv-user.register", params);
				ctx.meta.$location = "/api/v1/me";
				return { id: user.id, username: user.username, region: user.region };
			}
		},
		{
			method: "POST",
			path: "/api/v1/auth/login",
			name: "login",
			summary: "Log in with username, e-mail or phone",
			tag: "auth",
			auth: false,
			status: 200,
			response: answer.tokens,
			errors: errors("login"),
			params: { $$strict: true, login, password: givenPassword },
			async handler(ctx, params: { login: string; password: string }) {
				// The entry region counts failed logins per client IP.
				return publicTokens(
					await ctx.call<Record<string, unknown>, unknown>(
						"auth-jwt.login",
						{ ...params, client: this.settings.client },
						{ meta: { clientIp: ctx.locals.clientIp } }
					)
				);
			}
		},
		{
			method: "POST",
			path: "/api/v1/auth/refresh",
			name: "refresh",
			summary: "Exchange a refresh token for new tokens (rotates it)",
			tag: "auth",
			auth: false,
			status: 200,
			response: answer.tokens,
			errors: errors("refresh"),
			params: { $$strict: true, refreshToken: { type: "string", min: 1, max: 128 } },
			async handler(ctx, params: { refreshToken: string }) {
				const tokens = await ctx
					.call<Record<string, unknown>, unknown>("auth-jwt.refresh", { refreshToken: params.refreshToken, client: this.settings.client })
					.catch((err: { type?: string }) => {
						// A malformed token is just an invalid one to the client.
						if (err.type === "VALIDATION_ERROR") throw unauthorized("refresh token is not valid");
						throw err;
					});
				return publicTokens(tokens);
			}
		},
		{
			method: "POST",
			path: "/api/v1/auth/logout",
			name: "logout",
			summary: "End this session",
			tag: "auth",
			auth: true,
			status: 204,
			errors: errors("logout"),
			params: { $$strict: true },
			async handler(ctx) {
				await ctx.call("auth-jwt.endSession", { userId: ctx.locals.user.id, sid: ctx.locals.user.sid });
				return null;
			}
		},
		{
			method: "GET",
			path: "/api/v1/me",
			name: "me",
			summary: "The caller's profile, served by its home region",
			tag: "me",
			auth: true,
			permission: { resource: "profile", action: "read" },
			status: 200,
			response: answer.profile,
			errors: errors("me"),
			params: { $$strict: true },
			handler(ctx) {
				const userId = ctx.locals.user.id;
				return this.cachedCall<Record<string, unknown>>(ctx, "sv-user.get", { userId }, userId).then(profile => withRegion(this, ctx, profile));
			}
		},
		{
			method: "PATCH",
			path: "/api/v1/me",
			name: "updateMe",
			summary: "Change e-mail, phone or country (null removes)",
			tag: "me",
			auth: true,
			permission: { resource: "profile", action: "update" },
			status: 200,
			response: answer.profile,
			errors: errors("updateMe"),
			params: { $$strict: true, email: { ...email, nullable: true }, phone: { ...phone, nullable: true }, country: { ...country, nullable: true } },
			async handler(ctx, params: Record<string, string | null>) {
				return withRegion(this, ctx, await ctx.call("sv-user.update", { ...params, userId: ctx.locals.user.id }));
			}
		},
		{
			method: "GET",
			path: "/api/v1/me/sessions",
			name: "mySessions",
			summary: "The caller's live sessions",
			tag: "me",
			auth: true,
			permission: { resource: "profile", action: "read" },
			status: 200,
			response: answer.sessions,
			errors: errors("mySessions"),
			params: { $$strict: true },
			async handler(ctx) {
				const sessions = await ctx.call<{ sid: string }[], unknown>("auth-jwt.sessions", { userId: ctx.locals.user.id });
				return sessions.map(s => ({ ...s, current: s.sid === ctx.locals.user.sid }));
			}
		},
		{
			method: "DELETE",
			path: "/api/v1/me/sessions/:sid",
			name: "endMySession",
			summary: "End one of the caller's sessions",
			tag: "me",
			auth: true,
			permission: { resource: "profile", action: "update" },
			status: 204,
			errors: errors("endMySession"),
			params: { $$strict: true, sid: sessionId },
			async handler(ctx, params: { sid: string }) {
				// Another user's session is not found (404), exactly like one that never existed.
				await ctx.call("auth-jwt.endSession", { userId: ctx.locals.user.id, sid: params.sid });
				return null;
			}
		},
		{
			method: "GET",
			path: "/api/v1/regions",
			name: "regions",
			summary: "Regions and whether they are reachable",
			tag: "regions",
			auth: false,
			status: 200,
			response: answer.regions,
			errors: errors("regions"),
			params: { $$strict: true },
			async handler(ctx) {
				const list = await ctx.call<{ id: string; name: string; status: string }[], unknown>("sv-region.regions", {});
				return list.map(r => ({ id: r.id, name: r.name, status: r.status }));
			}
		},
		{
			method: "GET",
			path: "/.well-known/jwks.json",
			name: "jwks",
			summary: "Public keys of every region (JWKS)",
			tag: "meta",
			auth: false,
			status: 200,
			response: answer.jwks,
			errors: errors("jwks"),
			params: { $$strict: true },
			async handler(ctx) {
				const keys = await ctx.call("auth-jwt.jwks", {}, { nodeID: this.broker.nodeID });
				ctx.meta.$responseHeaders = { "Cache-Control": "public, max-age=300" };
				return keys;
			}
		},
		{
			method: "GET",
			path: "/api/v1/openapi.json",
			name: "openapi",
			summary: "This document",
			tag: "meta",
			auth: false,
			status: 200,
			response: answer.openApiDocument,
			params: { $$strict: true },
			handler(ctx) {
				ctx.meta.$responseHeaders = { "Cache-Control": "no-cache" };
				this.openapi ??= openApiDocument({
					title: `edgehome ${this.settings.client} API`,
					version: "1.0.0",
					description: `The REST API of the ${this.settings.client} gateway, identical in every region.`,
					routes: this.routeTable,
					paramsOf: name => this.routeTable.find(r => r.name === name)?.params
				});
				return this.openapi;
			}
		},
		{
			method: "GET",
			path: "/docs",
			name: "docsPage",
			summary: "Swagger UI",
			tag: "meta",
			auth: false,
			status: 200,
			response: answer.file,
			mediaTypes: ["text/html"],
			params: { $$strict: true },
			handler(ctx) {
				ctx.meta.$responseType = "text/html; charset=utf-8";
				ctx.meta.$responseHeaders = { ...DOCUMENT_HEADERS, "Content-Security-Policy": DOCS_CSP, "Cache-Control": "no-cache" };
				// A buffer carries its length, on HEAD too.
				return readDocsFile("index.html")!.body;
			}
		},
		{
			method: "GET",
			path: "/docs/:file",
			name: "docsFile",
			summary: "Swagger UI assets",
			tag: "meta",
			auth: false,
			status: 200,
			response: answer.file,
			mediaTypes: ["text/javascript", "text/css", "image/png"],
			errors: [declared(noSuchFile())],
			params: { $$strict: true, file: { type: "string", max: 64 } },
			handler(ctx, params: { file: string }) {
				const file = readDocsFile(params.file);
				if (!file) throw noSuchFile();
				ctx.meta.$responseType = file.type;
				ctx.meta.$responseHeaders = { "Cache-Control": "public, max-age=3600" };
				return file.body;
			}
		},
		{
			method: "GET",
			path: "/healthz",
			name: "healthz",
			summary: "Liveness",
			tag: "meta",
			auth: false,
			status: 200,
			response: answer.liveness,
			params: { $$strict: true },
			handler() {
				return { status: "ok" };
			}
		},
		{
			method: "GET",
			path: "/readyz",
			name: "readyz",
			summary: "Readiness (503 naming the failing check)",
			tag: "meta",
			auth: false,
			status: 200,
			response: answer.readiness,
			alsoAnswers: { 503: "Not ready: `checks` names the failing check." },
			params: { $$strict: true },
			async handler(ctx) {
				const state = await readiness(this.broker);
				if (!state.ready) ctx.meta.$statusCode = 503;
				return { status: state.ready ? "ready" : "not ready", checks: state.checks };
			}
		}
	];
}
