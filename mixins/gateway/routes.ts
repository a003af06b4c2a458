import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { BlockList } from "node:net";
import type { Context, Service } from "moleculer";
import type { Lru } from "../../kernel/lru.ts";
import type { ClientType } from "../../regions/region.ts";
import type { CachingService } from "../cache.mixin.ts";
import type { DeclaredError } from "./declared-errors.ts";
import type { LiveStreams } from "./live-streams.ts";
import type { RateLimit, RateLimiter } from "./rate-limiter.ts";
import type { GatewaySettings } from "./settings.ts";

/** HTTP methods a gateway route may answer (every GET route answers HEAD as well). */
export type RouteMethod = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/** What the OpenAPI document needs to know of a route. */
export interface RouteDoc {
	method: RouteMethod;
	/** Full path, moleculer-web alias syntax for parameters: `/api/v1/admin/users/:id`. */
	path: string;
	/** The operation's name, unique in its gateway (the OpenAPI operationId). */
	name: string;
	/** One line for the OpenAPI document. */
	summary: string;
	/** More for the OpenAPI document, after what it says of the route's token and permission. */
	description?: string;
	/** OpenAPI tag grouping the route. */
	tag: string;
	/** A bearer access token of this gateway's client type is required. */
	auth: boolean;
	/** RBAC permission the caller must hold (only with `auth`). */
	permission?: { resource: string; action: string };
	/** An `Idempotency-Key` header is required, checked at the edge and handed to the handler as `ctx.locals.idempotencyKey`. */
	idempotencyKey?: boolean;
	/** Status of a successful answer. */
	status: 200 | 201 | 202 | 204;
	/** JSON Schema (2020-12) of a successful answer's body, for the OpenAPI document. */
	response?: Record<string, unknown>;
	/** Media types of a successful answer; JSON unless said. */
	mediaTypes?: readonly string[];
	/**
	 * A long-lived answer (an event stream) the handler writes on the response itself: no ETag,
	 * nothing written by the gateway once the handler has returned; HEAD gets the stream's headers.
	 */
	stream?: true;
	/**
	 * A file the handler sends on the response itself, with its own status (200, 206, 304) and
	 * headers: no ETag from the gateway; HEAD runs the handler too, which sends the headers alone.
	 */
	download?: true;
	/** Other statuses answered with the same body (status → when), e.g. readiness's 503. */
	alsoAnswers?: Readonly<Record<number, string>>;
	/** The errors the handler may pass on from the services it calls, from their catalogues (the edge's own are known). */
	errors?: readonly DeclaredError[];
}

/**
 * One REST route of a gateway, the single source for moleculer-web's aliases, the edge checks
 * (authentication, RBAC), request validation and the OpenAPI document. Every route is listed
 * explicitly: nothing else answers.
 *
 * A route is served on the gateway's node by its handler, not by an action: nothing on the
 * service bus can call it with a `ctx.meta.user` of its choosing, and a request costs no local
 * action call.
 */
export interface GatewayRoute<P = any> extends RouteDoc {
	/**
	 * fastest-validator schema of the request: the public contract. GET routes take it from the
	 * query string, the others from the JSON body; path parameters from the path.
	 */
	params: Record<string, unknown>;
	/**
	 * Serves a valid request: `this` is the gateway service, `ctx` the request's context, `params`
	 * the validated request. `res` is for a `stream` or `download` route to answer on; any other route's answer is
	 * what it returns, written by the gateway.
	 */
	handler(this: GatewayService, ctx: GatewayContext, params: P, res: ServerResponse): unknown;
}

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
export type GatewayContext = Context<
	unknown,
	{ user: { id: string } | null; $statusCode?: number; $location?: string; $responseHeaders?: Record<string, string>; $responseType?: string }
> & {
	locals: { user: GatewayUser; clientIp: string; idempotencyKey?: string };
};

/** A request as moleculer-web hands it on, with what the gateway adds. */
export type GatewayRequest = IncomingMessage & {
	$ctx?: GatewayContext;
	$alias?: { handler?: unknown; keys?: { name: string }[] };
	$params?: Record<string, unknown>;
	/** The URL as sent; its path with one trailing slash cut off, and its parsed query string (moleculer-web's). */
	originalUrl?: string;
	parsedUrl?: string;
	query?: Record<string, unknown>;
	body?: unknown;
	$clientIp?: string;
	$requestId?: string;
	/** The route the request matched, once its edge checks began. */
	$gatewayRoute?: GatewayRoute;
};

/** What the gateway mixin adds to the service, on top of moleculer-web. */
export interface GatewayService extends Service<GatewaySettings>, CachingService {
	server?: Server;
	/** moleculer-web's aliases of every route (HEAD ones included). */
	aliases: { method: string; match(url: string): Record<string, string> | false }[];
	routeTable: GatewayRoute[];
	checks: Map<GatewayRoute, (params: unknown) => true | unknown[]>;
	proxies: BlockList | null;
	decisions: Lru<{ allowed: boolean; at: number }>;
	limiter: RateLimiter;
	/** The event streams this gateway holds open (stream routes). */
	liveStreams: LiveStreams;
	openapi?: object;
	httpHandler(req: IncomingMessage, res: ServerResponse): void;
	authenticateUser(ctx: GatewayContext, req: GatewayRequest, route: GatewayRoute): { id: string } | Promise<{ id: string }>;
	/** Whether the request's token still verifies: for answers that outlive the request (see edge-checks.ts). */
	stillAuthenticated(ctx: GatewayContext, req: GatewayRequest): Promise<boolean>;
	/** `key`, `now`: the decision's cache key and the time, when the caller has them already (see edge-checks.ts). */
	authorize(ctx: GatewayContext, userId: string, permission: { resource: string; action: string }, key?: string, now?: number): void | Promise<void>;
	limit(key: string, limit: RateLimit, now?: number): void | Promise<void>;
	aliasHandler(req: GatewayRequest, res: ServerResponse, alias: { action?: string; handler?: { route?: GatewayRoute } }): unknown;
	serveRoute(route: GatewayRoute, req: GatewayRequest, res: ServerResponse): true | Promise<true>;
	/** moleculer-web's: the response of a served request, the CORS headers (true when it answered a preflight), the access line. */
	sendResponse(req: GatewayRequest, res: ServerResponse, data: unknown): void;
	corsHandler(route: unknown, req: GatewayRequest, res: ServerResponse): boolean;
	logRequest(req: GatewayRequest): void;
	sendApiError(req: GatewayRequest, res: ServerResponse, err: unknown): void;
}
