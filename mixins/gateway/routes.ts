import type { Context } from "moleculer";
import type { DeclaredError } from "./declared-errors.ts";

/** HTTP methods a gateway route may answer. */
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
	/** OpenAPI tag grouping the route. */
	tag: string;
	/** A bearer access token of this gateway's client type is required. */
	auth: boolean;
	/** RBAC permission the caller must hold (only with `auth`). */
	permission?: { resource: string; action: string };
	/** Status of a successful answer. */
	status: 200 | 201 | 202 | 204;
	/** JSON Schema (2020-12) of a successful answer's body, for the OpenAPI document. */
	response?: Record<string, unknown>;
	/** Media types of a successful answer; JSON unless said. */
	mediaTypes?: readonly string[];
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
	/** fastest-validator schema of the request (body, query and path parameters merged): the public contract. */
	params: Record<string, unknown>;
	/**
	 * Serves a valid request: `this` is the gateway service, `ctx` the request's context
	 * (`ctx.meta.user` set on routes with `auth`), `params` the validated request.
	 */
	handler(this: any, ctx: Context<unknown, any>, params: P): unknown;
}
