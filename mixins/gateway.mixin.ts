import { createServer } from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { Errors } from "moleculer";
import type { Context, ServiceSchema } from "moleculer";
import ApiGateway from "moleculer-web";
import type { ClientType } from "../regions/region.ts";
import { envInt, envString } from "../regions/runtime/env.ts";
import { readiness } from "../regions/runtime/health.ts";
import { regionRuntimeOf } from "../regions/runtime/region-runtime.ts";
import { storesOf } from "../regions/stores/index.ts";
import { Lru } from "../services/shared/lru.ts";
import { clientIp, trustedProxies } from "./gateway/client-ip.ts";
import { readDocsFile, docsIndexHtml, DOCS_CSP } from "./gateway/docs.ts";
import { toHttpError } from "./gateway/errors.ts";
import { openApiDocument } from "./gateway/openapi.ts";
import { MemoryRateLimiter, RedisRateLimiter } from "./gateway/rate-limiter.ts";
import type { RateDecision, RateLimit } from "./gateway/rate-limiter.ts";
import type { GatewayRoute } from "./gateway/routes.ts";
import { traceContext } from "./gateway/trace-context.ts";
import { country, email, password, phone, sessionId, username } from "../services/shared/fields.ts";

/** Request limits every gateway enforces. */
export const MAX_BODY_BYTES = 64 * 1024;
export const MAX_HEADER_BYTES = 16 * 1024;
/** How long an RBAC decision is reused on a gateway node (the rules converge within a second anyway). */
const DECISION_TTL_MS = 1000;

/**
 * What moleculer-web's request action (`rest`, one call per HTTP request) runs with. It is the
 * entry point that calls the services: breakers, bulkheads and retries belong to those calls. A
 * retry here would run the whole request again (a second registration, say) on top of the calls'
 * own retries; moleculer-web already gives it no deadline.
 */
const ENTRY_ACTION = { bulkhead: { enabled: false }, circuitBreaker: { enabled: false }, retryPolicy: { enabled: false }, timeout: 0 };

/** Who a verified bearer token says the caller is: `ctx.locals.user` in route handlers. */
export interface GatewayUser {
	id: string;
	sid: string;
	/** The home region the token was issued in. */
	region: string;
	client: ClientType;
}

/**
 * The request's context, as route handlers get it (their params come separately, validated).
 * `meta` travels with every call the handler makes, so it holds only what services use: the
 * caller's user id. The rest of what the gateway knows about the request stays in `locals`
 * (measured: the full identity in meta cost every request more on the gateway, the NATS server
 * and the serving node than all the edge checks together).
 */
export type GatewayContext = Context<unknown, { user: { id: string } | null; $statusCode?: number; $location?: string; $responseHeaders?: Record<string, string>; $responseType?: string }> & {
	locals: { user: GatewayUser; clientIp: string };
};

/** OWASP's set for API responses; the HTML docs page adds what only documents need. */
const SECURITY_HEADERS: [string, string][] = [
	["X-Content-Type-Options", "nosniff"],
	["X-Frame-Options", "DENY"],
	["Strict-Transport-Security", "max-age=31536000; includeSubDomains"],
	["Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"],
	["Cache-Control", "no-store"]
];
const DOCUMENT_HEADERS = { "Referrer-Policy": "no-referrer", "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Resource-Policy": "same-origin" };


const profileSchema = {
	type: "object",
	properties: {
		id: { type: "string" },
		username: { type: "string" },
		email: { type: ["string", "null"] },
		phone: { type: ["string", "null"] },
		country: { type: ["string", "null"] },
		region: { type: "string" },
		createdAt: { type: "string", format: "date-time" }
	}
};
const tokensSchema = {
	type: "object",
	properties: { accessToken: { type: "string" }, refreshToken: { type: "string" }, tokenType: { const: "Bearer" }, expiresIn: { type: "integer" }, region: { type: "string" } }
};

/** The routes every gateway answers, whatever its client type. */
export const COMMON_ROUTES: GatewayRoute[] = [
	{
		method: "POST", path: "/api/v1/auth/register", name: "register", summary: "Register a user (homed by country, else in this region)", tag: "auth", auth: false, status: 201,
		response: { type: "object", properties: { id: { type: "string" }, username: { type: "string" }, region: { type: "string" } } },
		params: { $$strict: true, username, password, email, phone, country },
		async handler(ctx: GatewayContext, params: { username: string; password: string }) {
			const user = await ctx.call<{ id: string; username: string; region: string }, unknown>("sv-user.register", params);
			ctx.meta.$location = "/api/v1/me";
			return { id: user.id, username: user.username, region: user.region };
		}
	},
	{
		method: "POST", path: "/api/v1/auth/login", name: "login", summary: "Log in with username, e-mail or phone", tag: "auth", auth: false, status: 200, response: tokensSchema,
		params: { $$strict: true, login: { type: "string", min: 3, max: 254 }, password: { type: "string", min: 1, max: 128 } },
		async handler(ctx: GatewayContext, params: { login: string; password: string }) {
			// The entry region counts failed logins per client IP.
			return this.publicTokens(await ctx.call("auth-jwt.login", { ...params, client: this.settings.client }, { meta: { clientIp: ctx.locals.clientIp } }));
		}
	},
	{
		method: "POST", path: "/api/v1/auth/refresh", name: "refresh", summary: "Exchange a refresh token for new tokens (rotates it)", tag: "auth", auth: false, status: 200, response: tokensSchema,
		params: { $$strict: true, refreshToken: { type: "string", min: 1, max: 128 } },
		async handler(ctx: GatewayContext, params: { refreshToken: string }) {
			return this.publicTokens(await ctx.call("auth-jwt.refresh", { refreshToken: params.refreshToken, client: this.settings.client }).catch((err: { type?: string }) => {
				// A malformed token is just an invalid one to the client.
				if (err.type === "VALIDATION_ERROR") throw unauthorized("refresh token is not valid");
				throw err;
			}));
		}
	},
	{
		method: "POST", path: "/api/v1/auth/logout", name: "logout", summary: "End this session", tag: "auth", auth: true, status: 204,
		params: { $$strict: true },
		async handler(ctx: GatewayContext) {
			await ctx.call("auth-jwt.endSession", { userId: ctx.locals.user.id, sid: ctx.locals.user.sid });
			return null;
		}
	},
	{
		method: "GET", path: "/api/v1/me", name: "me", summary: "The caller's profile, served by its home region", tag: "me", auth: true, permission: { resource: "profile", action: "read" }, status: 200, response: profileSchema,
		params: { $$strict: true },
		async handler(ctx: GatewayContext) {
			return this.withRegion(ctx, await ctx.call("sv-user.get", { userId: ctx.locals.user.id }));
		}
	},
	{
		method: "PATCH", path: "/api/v1/me", name: "updateMe", summary: "Change e-mail, phone or country (null removes)", tag: "me", auth: true, permission: { resource: "profile", action: "update" }, status: 200, response: profileSchema,
		params: { $$strict: true, email: { ...email, nullable: true }, phone: { ...phone, nullable: true }, country: { ...country, nullable: true } },
		async handler(ctx: GatewayContext, params: Record<string, string | null>) {
			return this.withRegion(ctx, await ctx.call("sv-user.update", { ...params, userId: ctx.locals.user.id }));
		}
	},
	{
		method: "GET", path: "/api/v1/me/sessions", name: "mySessions", summary: "The caller's live sessions", tag: "me", auth: true, permission: { resource: "profile", action: "read" }, status: 200, response: { type: "array", items: { type: "object" } },
		params: { $$strict: true },
		async handler(ctx: GatewayContext) {
			const sessions = await ctx.call<{ sid: string }[], unknown>("auth-jwt.sessions", { userId: ctx.locals.user.id });
			return sessions.map(s => ({ ...s, current: s.sid === ctx.locals.user.sid }));
		}
	},
	{
		method: "DELETE", path: "/api/v1/me/sessions/:sid", name: "endMySession", summary: "End one of the caller's sessions", tag: "me", auth: true, permission: { resource: "profile", action: "update" }, status: 204,
		params: { $$strict: true, sid: sessionId },
		async handler(ctx: GatewayContext, params: { sid: string }) {
			// Another user's session is not found, exactly like one that never existed.
			const { ended } = await ctx.call<{ ended: boolean }, unknown>("auth-jwt.endSession", { userId: ctx.locals.user.id, sid: params.sid });
			if (!ended) throw new Errors.MoleculerClientError("no such session", 404, "NOT_FOUND");
			return null;
		}
	},
	{
		method: "GET", path: "/api/v1/regions", name: "regions", summary: "Regions and whether they are reachable", tag: "regions", auth: false, status: 200,
		response: { type: "array", items: { type: "object", properties: { id: { type: "string" }, name: { type: "string" }, status: { type: "string" } } } },
		params: { $$strict: true },
		async handler(ctx: GatewayContext) {
			const list = await ctx.call<{ id: string; name: string; status: string }[], unknown>("sv-region.regions", {});
			return list.map(r => ({ id: r.id, name: r.name, status: r.status }));
		}
	},
	{
		method: "GET", path: "/.well-known/jwks.json", name: "jwks", summary: "Public keys of every region (JWKS)", tag: "meta", auth: false, status: 200,
		params: { $$strict: true },
		async handler(ctx: GatewayContext) {
			const keys = await ctx.call("auth-jwt.jwks", {}, { nodeID: this.broker.nodeID });
			ctx.meta.$responseHeaders = { "Cache-Control": "public, max-age=300" };
			return keys;
		}
	},
	{
		method: "GET", path: "/api/v1/openapi.json", name: "openapi", summary: "This document", tag: "meta", auth: false, status: 200,
		params: { $$strict: true },
		handler(ctx: GatewayContext) {
			ctx.meta.$responseHeaders = { "Cache-Control": "no-cache" };
			this.openapi ??= openApiDocument({
				title: `edgehome ${this.settings.client} API`,
				version: "1.0.0",
				description: `The REST API of the ${this.settings.client} gateway, identical in every region.`,
				routes: this.routeTable,
				paramsOf: (name: string) => this.routeTable.find((r: GatewayRoute) => r.name === name)?.params
			});
			return this.openapi;
		}
	},
	{
		method: "GET", path: "/docs", name: "docsPage", summary: "Swagger UI", tag: "meta", auth: false, status: 200,
		params: { $$strict: true },
		handler(ctx: GatewayContext) {
			ctx.meta.$responseType = "text/html; charset=utf-8";
			ctx.meta.$responseHeaders = { ...DOCUMENT_HEADERS, "Content-Security-Policy": DOCS_CSP, "Cache-Control": "no-cache" };
			return docsIndexHtml();
		}
	},
	{
		method: "GET", path: "/docs/:file", name: "docsFile", summary: "Swagger UI assets", tag: "meta", auth: false, status: 200,
		params: { $$strict: true, file: { type: "string", max: 64 } },
		handler(ctx: GatewayContext, params: { file: string }) {
			const file = readDocsFile(params.file);
			if (!file) throw new Errors.MoleculerClientError("no such file", 404, "NOT_FOUND");
			ctx.meta.$responseType = file.type;
			ctx.meta.$responseHeaders = { "Cache-Control": "public, max-age=3600" };
			return file.body;
		}
	},
	{
		method: "GET", path: "/healthz", name: "healthz", summary: "Liveness", tag: "meta", auth: false, status: 200,
		params: { $$strict: true },
		handler() {
			return { status: "ok" };
		}
	},
	{
		method: "GET", path: "/readyz", name: "readyz", summary: "Readiness (503 naming the failing check)", tag: "meta", auth: false, status: 200,
		params: { $$strict: true },
		async handler(ctx: GatewayContext) {
			const state = await readiness(this.broker);
			if (!state.ready) ctx.meta.$statusCode = 503;
			return { status: state.ready ? "ready" : "not ready", checks: state.checks };
		}
	}
];

export interface GatewaySettings {
	client: ClientType;
	/** Listening port; null: the region file's port for this client type. 0: any free port (tests). */
	port: number | null;
	/** Bind address; null: 127.0.0.1 when embedded, else 0.0.0.0 (EDGEHOME_HTTP_HOST overrides). */
	ip: string | null;
	/** Per client IP and per user, shared by the region's gateway nodes (Redis; memory when embedded). */
	rateLimits: { ip: RateLimit; user: RateLimit };
	/** Direct peers whose X-Forwarded-For is believed: IPs or CIDRs, comma-separated. */
	trustedProxies: string;
	/** Allowed CORS origins (comma-separated); empty: no CORS headers at all. */
	corsOrigins: string;
}

function defaults(client: ClientType, env = process.env): GatewaySettings {
	const upper = client.toUpperCase();
	return {
		client,
		port: null,
		ip: env.EDGEHOME_HTTP_HOST || null,
		rateLimits: {
			ip: { max: envInt(env, "EDGEHOME_RATE_IP_PER_MIN", 600, 1), windowMs: 60_000 },
			user: { max: envInt(env, "EDGEHOME_RATE_USER_PER_MIN", 300, 1), windowMs: 60_000 }
		},
		trustedProxies: envString(env, "EDGEHOME_TRUSTED_PROXIES", ""),
		corsOrigins: envString(env, `EDGEHOME_CORS_${upper}`, "")
	};
}

/**
 * A weak ETag from a fast 53-bit hash of the body (cyrb53-style) and its length: a conditional GET
 * needs a validator, not a cryptographic digest, and SHA-1 per response was a measurable cost.
 */
function weakEtag(body: string | Buffer): string {
	const text = typeof body === "string" ? body : body.toString("latin1");
	let h1 = 0xdeadbeef;
	let h2 = 0x41c6ce57;
	for (let i = 0; i < text.length; i++) {
		const c = text.charCodeAt(i);
		h1 = Math.imul(h1 ^ c, 2654435761);
		h2 = Math.imul(h2 ^ c, 1597334677);
	}
	h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
	h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
	return `W/"${text.length.toString(16)}-${(4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(36)}"`;
}

type Claims = { sub: string; sid: string; rgn: string; cli: ClientType };

type Req = IncomingMessage & {
	$ctx?: Context;
	$alias?: { handler?: unknown };
	$params?: Record<string, unknown>;
	$clientIp?: string;
	$requestId?: string;
	/** The route the request matched, once its edge checks began. */
	$gatewayRoute?: GatewayRoute;
};

/**
 * `fn(value)`, waiting first only when `value` is pending: the edge checks are answered from
 * memory almost always, and an await per check was a measurable share of a request.
 */
function andThen<T, R>(value: T | Promise<T>, fn: (value: T) => R | Promise<R>): R | Promise<R> {
	return value instanceof Promise ? value.then(fn) : fn(value);
}

function refuseUnlessAllowed(allowed: boolean): void {
	if (!allowed) throw new Errors.MoleculerClientError("not allowed", 403, "FORBIDDEN");
}

function refuseOverLimit(decision: RateDecision): void {
	if (!decision.ok) throw new Errors.MoleculerClientError("too many requests", 429, "RATE_LIMITED", { retryAfter: decision.retryAfterS });
}

function unauthorized(message: string): Errors.MoleculerClientError {
	return new Errors.MoleculerClientError(message, 401, "UNAUTHORIZED");
}

/**
 * moleculer-web runs a function alias after the route's hooks (here: every edge check). It
 * answers through `sendResponse` and reports a failure through `next`; the function carries
 * its route, for the hooks to find.
 */
function routeAlias(route: GatewayRoute) {
	const alias = function (this: any, req: Req, res: ServerResponse, next: (err?: unknown) => void) {
		this.serveRoute(route, req, res).catch(next);
	};
	return Object.assign(alias, { route });
}

/**
 * The REST front door shared by api-app, api-www, api-cms and api-wx: moleculer-web with every
 * route listed (nothing else answers), requests validated by each route's strict schema, bearer
 * tokens verified on this node for this gateway's client type, RBAC per route, rate limits per IP
 * and per user, one error shape, request ids and W3C trace context, security headers, ETags, and
 * an OpenAPI document generated from the same route table.
 */
export function gatewayMixin(opts: { client: ClientType; routes?: GatewayRoute[] }): Partial<ServiceSchema<any>> {
	const table = [...COMMON_ROUTES, ...(opts.routes ?? [])];
	const settings = defaults(opts.client);
	const cors = settings.corsOrigins
		? { origin: settings.corsOrigins.split(",").map(s => s.trim()), methods: ["GET", "POST", "PUT", "PATCH", "DELETE"], allowedHeaders: ["Authorization", "Content-Type", "X-Request-Id", "traceparent"], exposedHeaders: ["X-Request-Id", "traceparent", "Retry-After", "ETag"], maxAge: 600 }
		: undefined;

	return {
		mixins: [ApiGateway],
		settings: {
			...settings,
			server: true,
			// moleculer-web formats (and colours) its access lines before the logger drops them: off.
			logRequest: null,
			logResponse: null,
			logRequestParams: null,
			logRouteRegistration: "debug",
			optimizeOrder: false,
			routes: [
				{
					path: "/",
					mappingPolicy: "restrict",
					autoAliases: false,
					aliases: Object.fromEntries(table.map(r => [`${r.method} ${r.path}`, routeAlias(r)])),
					bodyParsers: { json: { limit: MAX_BODY_BYTES, strict: true }, urlencoded: false },
					etag: weakEtag,
					// One hook runs every edge check (see `authenticate`): each moleculer-web hook costs a request an await.
					authentication: true,
					...(cors ? { cors } : {})
				}
			],
			rootCallOptions(this: any, options: Record<string, unknown>, req: Req, res: ServerResponse) {
				const trace = traceContext(req.headers);
				req.$clientIp = clientIp(req, this.proxies);
				// moleculer-web answers the request id as X-Request-ID itself.
				options.requestID = req.$requestId = trace.requestId;
				if (trace.traceparent) res.setHeader("traceparent", trace.traceparent);
				for (const [name, value] of SECURITY_HEADERS) res.setHeader(name, value);
			},
			onError(this: any, req: Req, res: ServerResponse, err: unknown) {
				this.sendApiError(req, res, err);
			}
		},

		methods: {
			/** Our own server: headers capped (431 past the cap, answered in our error shape). */
			createServer(this: any) {
				if (this.server) return;
				this.server = createServer({ maxHeaderSize: MAX_HEADER_BYTES }, this.httpHandler);
				this.server.requestTimeout = this.settings.requestTimeout;
				this.server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => {
					if (!socket.writable) return socket.destroy();
					const tooLarge = err.code === "HPE_HEADER_OVERFLOW";
					const status = tooLarge ? 431 : 400;
					const { requestId } = traceContext({});
					const body = JSON.stringify({ error: { code: tooLarge ? "HEADERS_TOO_LARGE" : "BAD_REQUEST", message: tooLarge ? `request headers are larger than ${MAX_HEADER_BYTES} bytes` : "malformed request", requestId } });
					socket.end(
						`HTTP/1.1 ${status} ${tooLarge ? "Request Header Fields Too Large" : "Bad Request"}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nX-Request-Id: ${requestId}\r\nConnection: close\r\n\r\n${body}`
					);
				});
				this.isHTTPS = false;
			},

			/**
			 * Every request's edge checks, in order: the client IP's rate limit; then, on routes that
			 * need a user, the bearer token (verified on this node, for this gateway's client type), the
			 * user's rate limit and the route's permission. The user goes to `ctx.locals.user`; what this
			 * returns, moleculer-web puts in `ctx.meta.user` for the services: the id alone.
			 */
			authenticate(this: any, ctx: GatewayContext, _route: unknown, req: Req): { id: string } | null | Promise<{ id: string } | null> {
				ctx.locals.clientIp = req.$clientIp!;
				const route = (req.$alias?.handler as { route?: GatewayRoute } | undefined)?.route;
				req.$gatewayRoute = route;
				return andThen(this.limit(`ip:${req.$clientIp}`, this.settings.rateLimits.ip), () => (route?.auth ? this.authenticateUser(ctx, req, route) : null));
			},

			/** The bearer token (verified on this node, for this gateway's client type), the user's rate limit, the route's permission. */
			authenticateUser(this: any, ctx: GatewayContext, req: Req, route: GatewayRoute): { id: string } | Promise<{ id: string }> {
				const header = req.headers.authorization;
				// The token's own form is checked by the verifier; here only the scheme and a size cap.
				if (!header || !header.startsWith("Bearer ") || header.length > 4096 + 7) throw unauthorized("a bearer access token is required");
				const token = header.slice(7);
				// Keys and revocations are local, no hop per request; when auth-jwt runs here (it should),
				// its verifier is called directly rather than through a broker call.
				const local = this.broker.getLocalService("auth-jwt") as { verifyToken?: (token: string, client: ClientType) => Claims | Promise<Claims> } | undefined;
				const verified: Claims | Promise<Claims> = local?.verifyToken
					? local.verifyToken(token, this.settings.client)
					: ctx.call<Claims, unknown>("auth-jwt.verify", { token, client: this.settings.client }, { nodeID: this.broker.nodeID });
				return andThen(verified, claims =>
					andThen(this.limit(`user:${claims.sub}`, this.settings.rateLimits.user), () =>
						andThen(route.permission ? this.authorize(ctx, claims.sub, route.permission) : undefined, () => {
							ctx.locals.user = { id: claims.sub, sid: claims.sid, region: claims.rgn, client: claims.cli };
							return { id: claims.sub };
						})
					)
				);
			},

			/** RBAC for one route; a decision is reused for DECISION_TTL_MS on this node. */
			authorize(this: any, ctx: GatewayContext, userId: string, permission: { resource: string; action: string }): void | Promise<void> {
				const key = `${userId}\0${permission.resource}\0${permission.action}`;
				const now = Date.now();
				const decision = this.decisions.peek(key);
				if (decision && now - decision.at <= DECISION_TTL_MS) return refuseUnlessAllowed(decision.allowed);
				return ctx.call<{ allowed: boolean }, unknown>("auth-rbac.enforce", { userId, ...permission }).then(({ allowed }) => {
					this.decisions.set(key, { allowed, at: now });
					refuseUnlessAllowed(allowed);
				});
			},

			limit(this: any, key: string, limit: RateLimit): void | Promise<void> {
				return andThen<RateDecision, void>(this.limiter.hit(key, limit), refuseOverLimit);
			},

			/** A matched route, past its edge checks: validate, run the handler, answer with the route's status. */
			async serveRoute(this: any, route: GatewayRoute, req: Req, res: ServerResponse) {
				const params = req.$params ?? {};
				const valid = this.checks.get(route)(params);
				if (valid !== true) throw new Errors.ValidationError("Parameters validation error!", "VALIDATION_ERROR", valid);
				const data = await route.handler.call(this, req.$ctx!, params);
				if (route.status !== 200) res.statusCode = route.status;
				this.sendResponse(req, res, route.status === 204 ? null : data);
			},

			publicTokens(tokens: { accessToken: string; refreshToken: string; tokenType: string; expiresIn: number; region: string }) {
				return { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken, tokenType: tokens.tokenType, expiresIn: tokens.expiresIn, region: tokens.region };
			},

			/** The profile with its home region, from this node's directory cache (just used to route the call). */
			async withRegion(this: any, ctx: GatewayContext, profile: Record<string, unknown>) {
				const { user } = ctx.locals;
				const home = await regionRuntimeOf(this.broker).directory.home(user.id);
				return { id: profile.id, username: profile.username, email: profile.email, phone: profile.phone, country: profile.country, region: home?.region ?? user.region, createdAt: profile.createdAt };
			},

			/** The one error shape: status, `{"error": {code, message, requestId}}`, never a stack or a service name. */
			sendApiError(this: any, req: Req, res: ServerResponse, err: unknown) {
				const e = toHttpError(err, Boolean(req.$gatewayRoute));
				if (e.status >= 500) this.logger.error(`${req.method} ${req.url?.split("?")[0]} failed:`, err);
				if (res.headersSent) return res.destroy();
				const requestId = req.$ctx?.requestID ?? req.$requestId;
				if (!res.hasHeader("X-Request-Id") && requestId) res.setHeader("X-Request-Id", requestId);
				res.statusCode = e.status;
				res.setHeader("Content-Type", "application/json; charset=utf-8");
				res.removeHeader("ETag");
				if (e.retryAfter) res.setHeader("Retry-After", String(e.retryAfter));
				if (e.status === 401) res.setHeader("WWW-Authenticate", 'Bearer realm="edgehome"');
				res.end(JSON.stringify({ error: { code: e.code, message: e.message, requestId, ...(e.details ? { details: e.details } : {}) } }));
			}
		},

		// Moleculer calls `merged` once the mixins are merged, before it creates the actions; its typings omit it.
		...({
			merged(schema: ServiceSchema) {
				const rest = schema.actions?.rest;
				if (rest && typeof rest === "object") schema.actions!.rest = { ...rest, ...ENTRY_ACTION };
			}
		} as object),

		created(this: any) {
			this.routeTable = table;
			this.checks = new Map(table.map(r => [r, this.broker.validator.compile(r.params)]));
			this.proxies = trustedProxies(this.settings.trustedProxies);
			this.decisions = new Lru(10_000);
			if (this.settings.port === null || this.settings.port === undefined) this.settings.port = regionRuntimeOf(this.broker).region.ports[this.settings.client as ClientType];
			// Embedded mode (in-process transport) is a developer's machine: loopback only.
			this.settings.ip ??= this.broker.options.transporter === "Fake" ? "127.0.0.1" : "0.0.0.0";
			const redis = storesOf(this.broker).redis;
			this.limiter = redis ? new RedisRateLimiter(redis) : new MemoryRateLimiter();
		}
	};
}
