import type { ServerResponse } from "node:http";
import type { Context, ServiceSchema } from "moleculer";
import { Errors } from "moleculer";
import ApiGateway from "moleculer-web";
import { Lru } from "../kernel/lru.ts";
import type { ClientType } from "../regions/region.ts";
import { regionRuntimeOf } from "../regions/runtime/region-runtime.ts";
import { httpServerSpan } from "../regions/runtime/tracing/http-server-span.ts";
import { cacheMixin } from "./cache.mixin.ts";
import { clientIp, trustedProxies } from "./gateway/client-ip.ts";
import type { CommonRouteErrors } from "./gateway/common-routes.ts";
import { commonRoutes } from "./gateway/common-routes.ts";
import { andThen, authenticate, authenticateUser, authorize, limit, stillAuthenticated } from "./gateway/edge-checks.ts";
import { weakEtag } from "./gateway/etag.ts";
import { aliasKeys, refuseUnlessPreflight } from "./gateway/http-methods.ts";
import { gatewayServer } from "./gateway/http-server.ts";
import { idempotencyKeyOf } from "./gateway/idempotency-key.ts";
import { LiveStreams, setStreamHeaders } from "./gateway/live-streams.ts";
import { MemoryRateLimiter, RedisRateLimiter } from "./gateway/rate-limiter.ts";
import { checkContentEncoding, refusePrototypeKeys, routeParams } from "./gateway/request.ts";
import { encodeResponse, sendApiError } from "./gateway/response.ts";
import type { RouteMiddleware } from "./gateway/route-middlewares.ts";
import { runMiddlewares } from "./gateway/route-middlewares.ts";
import type { GatewayContext, GatewayRequest, GatewayRoute, GatewayService } from "./gateway/routes.ts";
import { setSecurityHeaders } from "./gateway/security-headers.ts";
import type { GatewaySettings } from "./gateway/settings.ts";
import { corsOptions, gatewaySettings, MAX_BODY_BYTES } from "./gateway/settings.ts";
import { traceContext } from "./gateway/trace-context.ts";

export type { GatewayContext, GatewayUser } from "./gateway/routes.ts";

/**
 * What moleculer-web's request action (`rest`, one call per HTTP request) runs with. It is the
 * entry point that calls the services: breakers, bulkheads and retries belong to those calls. A
 * retry here would run the whole request again (a second registration, say) on top of the calls'
 * own retries; moleculer-web already gives it no deadline.
 */
const ENTRY_ACTION = { bulkhead: { enabled: false }, circuitBreaker: { enabled: false }, retryPolicy: { enabled: false }, timeout: 0 };

/** The parts of moleculer-web's route that its route and alias steps use. */
type MoleculerRoute = {
	cors?: unknown;
	opts?: { mergeParams?: boolean };
	middlewares: RouteMiddleware[];
	authentication?: (this: GatewayService, ctx: GatewayContext, route: unknown, req: GatewayRequest, res: ServerResponse, alias: unknown) => unknown;
	authorization?: unknown;
	onBeforeCall?: unknown;
	rateLimit?: unknown;
	hasWhitelist?: boolean;
	hasBlacklist?: boolean;
};
/** A matched alias as moleculer-web hands it to the route step: ours carry their route (see routeAlias). */
type Alias = { action?: string; handler?: { route?: GatewayRoute } };
type FoundAlias = { alias: Alias; params: Record<string, string> };
type RouteHandler = (this: GatewayService, ctx: Context, route: MoleculerRoute, req: GatewayRequest, res: ServerResponse, found?: FoundAlias) => unknown;
type AliasHandler = (this: GatewayService, req: GatewayRequest, res: ServerResponse, alias: Alias) => unknown;
/** moleculer-web's own: body parsers, CORS, then the alias; ours runs the checks that come before any of it. */
const moleculer = (ApiGateway as unknown as { methods: { routeHandler: RouteHandler; aliasHandler: AliasHandler } }).methods;
const moleculerRouteHandler = moleculer.routeHandler;

/** A moleculer-web route hook the gateway does not set, which its alias step would have to run. */
function hasOtherHooks(route: MoleculerRoute): boolean {
	return Boolean(route.authorization || route.onBeforeCall || route.rateLimit || route.hasWhitelist || route.hasBlacklist);
}

function notRouted(): Errors.MoleculerClientError {
	return new Errors.MoleculerClientError("no such route", 404, "NOT_FOUND");
}

/** The path as sent, up to its query string: moleculer-web matches it with one trailing slash cut off. */
function sentPathLength(url: string): number {
	const query = url.indexOf("?");
	return query === -1 ? url.length : query;
}

/**
 * moleculer-web runs a function alias after the route's hooks (here: every edge check). It
 * answers through `sendResponse` and reports a failure through `next`; the function carries
 * its route, for the hooks to find.
 */
function routeAlias(route: GatewayRoute) {
	const alias = function (this: GatewayService, req: GatewayRequest, res: ServerResponse, next: (err?: unknown) => void) {
		new Promise(served => served(this.serveRoute(route, req, res))).catch(next);
	};
	return Object.assign(alias, { route });
}

/**
 * The REST front door shared by api-app, api-www, api-cms and api-wx: moleculer-web with every
 * route listed (nothing else answers, paths matched exactly), requests validated by each route's
 * strict schema, bearer tokens verified on this node for this gateway's client type, RBAC per
 * route, rate limits per IP and per user, one error shape, request ids and W3C trace context,
 * security headers, ETags, HEAD on GET routes, live event streams (routes with `stream`), and an
 * OpenAPI document from the same route table.
 * Its parts live in mixins/gateway/, one concept each.
 */
export function gatewayMixin(opts: { client: ClientType; commonErrors: CommonRouteErrors; routes?: GatewayRoute[] }): Partial<ServiceSchema> {
	const table = [...commonRoutes(opts.commonErrors), ...(opts.routes ?? [])];

	const schema: Partial<ServiceSchema<GatewaySettings & Record<string, unknown>, Record<string, unknown>, Record<string, unknown>, GatewayService>> = {
		mixins: [ApiGateway, cacheMixin],
		settings: {
			...gatewaySettings(opts.client),
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
					aliases: Object.fromEntries(table.flatMap(r => aliasKeys(r).map(key => [key, routeAlias(r)]))),
					// Paths match as written: one resource, one URL (no case or trailing-slash variants for a proxy rule to miss).
					pathToRegexpOptions: { sensitive: true, trailing: false },
					bodyParsers: { json: { limit: MAX_BODY_BYTES, strict: true, reviver: refusePrototypeKeys }, urlencoded: false },
					etag: weakEtag,
					// One hook runs every edge check (see edge-checks.ts): each moleculer-web hook costs a request an await.
					authentication: true
				}
			],
			rootCallOptions(this: GatewayService, options: Record<string, unknown>, req: GatewayRequest, res: ServerResponse) {
				const trace = traceContext(req.headers);
				req.$clientIp = clientIp(req, this.proxies);
				// moleculer-web answers the request id as X-Request-ID itself.
				options.requestID = req.$requestId = trace.requestId;
				options.parentSpan = httpServerSpan(this.broker, this.name, req, res, trace);
				setSecurityHeaders(res);
				if (trace.traceparent) res.setHeader("traceparent", trace.traceparent);
			},
			onError(this: GatewayService, req: GatewayRequest, res: ServerResponse, err: unknown) {
				this.sendApiError(req, res, err);
			}
		},

		methods: {
			createServer(this: GatewayService) {
				this.server ??= gatewayServer(this.httpHandler, this.settings.requestTimeout);
				Object.assign(this, { isHTTPS: false });
			},

			/**
			 * What must hold before moleculer-web parses a body or runs a route: an exact path, no OPTIONS
			 * past CORS, a body encoding we decode. Then a route of ours takes moleculer-web's steps (body
			 * parsers, CORS, parameters, the alias step) without the promise and the three response
			 * listeners its own route step costs every request; anything else goes through moleculer-web's.
			 */
			routeHandler(this: GatewayService, ctx: Context, route: MoleculerRoute, req: GatewayRequest, res: ServerResponse, found?: FoundAlias) {
				if (req.parsedUrl !== undefined && sentPathLength(req.originalUrl ?? "") !== req.parsedUrl.length) throw notRouted();
				if (req.method === "OPTIONS") refuseUnlessPreflight(this, req, Boolean(route.cors));
				checkContentEncoding(req);
				const alias = found?.alias;
				if (!alias?.handler?.route || alias.action || hasOtherHooks(route) || route.opts?.mergeParams === false)
					return moleculerRouteHandler.call(this, ctx, route, req, res, found);
				(req as { $route?: MoleculerRoute }).$route = route;
				(res as { $route?: MoleculerRoute }).$route = route;
				this.logRequest(req);
				return andThen(runMiddlewares(this, route.middlewares, req, res), () => {
					if (this.corsHandler(route, req, res)) return true;
					const body = req.body !== null && typeof req.body === "object" ? req.body : {};
					req.$params = Object.assign({}, body, req.query, found!.params);
					req.$alias = alias;
					return this.aliasHandler(req, res, alias);
				});
			},

			/**
			 * moleculer-web's alias step for a route of ours: the authentication hook (every edge check),
			 * `ctx.meta.user` from it, then the route. Its own step awaits each hook and wraps the alias in a
			 * promise that a served request never settles (the response's "finish" does): a measurable
			 * share of a request. An alias with hooks ours do not set (or without ours) goes through moleculer-web's.
			 */
			aliasHandler(this: GatewayService, req: GatewayRequest, res: ServerResponse, alias: Alias) {
				const route = alias.handler?.route;
				const hooks = (req as { $route?: MoleculerRoute }).$route;
				if (!route || alias.action || !hooks?.authentication || hasOtherHooks(hooks)) return moleculer.aliasHandler.call(this, req, res, alias);
				const ctx = req.$ctx!;
				return andThen(hooks.authentication.call(this, ctx, hooks, req, res, alias), user => {
					ctx.meta.user = (user as { id: string } | null) || null;
					return this.serveRoute(route, req, res);
				});
			},

			authenticate,
			authenticateUser,
			authorize,
			limit,
			stillAuthenticated,

			/**
			 * A matched route, past its edge checks: its headers, then validate, run the handler, answer
			 * with the route's status (waiting only on a pending handler); a stream route answers itself.
			 */
			serveRoute(this: GatewayService, route: GatewayRoute, req: GatewayRequest, res: ServerResponse) {
				if (route.idempotencyKey) (req.$ctx as GatewayContext).locals.idempotencyKey = idempotencyKeyOf(req);
				const params = routeParams(route, req);
				const valid = this.checks.get(route)!(params);
				if (valid !== true) throw new Errors.ValidationError("Parameters validation error!", "VALIDATION_ERROR", valid);
				if (route.stream || route.download) {
					// HEAD: the headers a stream starts with, and no stream.
					if (req.method === "HEAD" && route.stream) {
						setStreamHeaders(res);
						res.end();
						return true;
					}
					// The route answers on the response itself, for as long as it stays open.
					return andThen(route.handler.call(this, req.$ctx as GatewayContext, params, res), () => true as const);
				}
				return andThen(route.handler.call(this, req.$ctx as GatewayContext, params, res), data => {
					if (route.status !== 200) res.statusCode = route.status;
					this.sendResponse(req, res, route.status === 204 ? null : data);
					// moleculer-web reads an alias step that answers nothing as "not routed".
					return true as const;
				});
			},

			encodeResponse,
			sendApiError
		},

		// Moleculer calls `merged` once the mixins are merged, before it creates the actions; its typings omit it.
		...({
			merged(schema: ServiceSchema<GatewaySettings & { routes: Record<string, unknown>[] }>) {
				const rest = schema.actions?.rest;
				if (rest && typeof rest === "object") schema.actions!.rest = { ...rest, ...ENTRY_ACTION };
				// CORS from the settings as the service finally has them (a gateway may set its own origins).
				const settings = schema.settings!;
				const cors = corsOptions(settings.corsOrigins);
				if (cors) for (const route of settings.routes) route.cors = cors;
			}
		} as object),

		created(this: GatewayService) {
			this.routeTable = table;
			const validator = this.broker.validator;
			if (!validator) throw new Error("a gateway validates every request: its broker needs a validator");
			this.checks = new Map(table.map(r => [r, validator.compile(r.params) as (params: unknown) => true | unknown[]]));
			this.proxies = trustedProxies(this.settings.trustedProxies);
			this.decisions = new Lru(10_000);
			if (this.settings.port === null || this.settings.port === undefined) this.settings.port = regionRuntimeOf(this.broker).region.ports[this.settings.client];
			// Embedded mode (in-process transport) is a developer's machine: loopback only.
			this.settings.ip ??= this.broker.options.transporter === "Fake" ? "127.0.0.1" : "0.0.0.0";
			const redis = regionRuntimeOf(this.broker).stores.redis;
			this.limiter = redis ? new RedisRateLimiter(redis) : new MemoryRateLimiter();
			this.liveStreams = new LiveStreams(this.settings.streams);
		},

		// Before moleculer-web's own `stopped` closes the server, which waits for every open response.
		stopped(this: GatewayService) {
			return this.liveStreams.stop();
		}
	};
	// Moleculer's mixin list is typed for any service; the gateway's own `this` is checked above.
	return schema as unknown as Partial<ServiceSchema>;
}
