/** HTTP methods a gateway route may answer. */
export type RouteMethod = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/**
 * One REST route of a gateway, the single source for moleculer-web's aliases, the edge checks
 * (authentication, RBAC) and the OpenAPI document. Every route is listed explicitly: nothing
 * else answers.
 */
export interface GatewayRoute {
	method: RouteMethod;
	/** Full path, moleculer-web alias syntax for parameters: `/api/v1/admin/users/:id`. */
	path: string;
	/** The gateway's own action that serves it (its `params` schema is the public contract). */
	action: string;
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
}
