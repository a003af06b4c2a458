import { Errors } from "moleculer";
import type { GatewayRequest, GatewayRoute, GatewayService } from "./routes.ts";

/**
 * The methods a path answers. Every GET route answers HEAD (the GET's status and headers, no
 * body). OPTIONS never reaches a handler: moleculer-web would resolve it as the GET (or as the
 * preflight's requested method) and run that; here it is a CORS preflight answered by
 * moleculer-web where CORS is configured, else 405 with `Allow`, or 404 for a path nothing answers.
 */

const ORDER = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/** The alias keys (`"GET /path"`) a route is served under. */
export function aliasKeys(route: GatewayRoute): string[] {
	return route.method === "GET" ? [`GET ${route.path}`, `HEAD ${route.path}`] : [`${route.method} ${route.path}`];
}

/** Methods some route answers on this path, in a fixed order. */
export function allowedMethods(service: GatewayService, path: string): string[] {
	const methods = new Set<string>();
	for (const alias of service.aliases) if (alias.match(path)) methods.add(alias.method);
	return ORDER.filter(m => methods.has(m));
}

/**
 * An OPTIONS request passes only as a CORS preflight for a method the path answers, for
 * moleculer-web to answer (204 with the CORS headers, or 403 for an origin not allowed).
 */
export function refuseUnlessPreflight(service: GatewayService, req: GatewayRequest, hasCors: boolean): void {
	const allowed = allowedMethods(service, req.parsedUrl ?? "");
	if (!allowed.length) throw new Errors.MoleculerClientError("no such route", 404, "NOT_FOUND");
	const requested = req.headers["access-control-request-method"];
	if (hasCors && req.headers.origin && requested && allowed.includes(requested)) return;
	throw new Errors.MoleculerClientError("this path does not answer this method", 405, "METHOD_NOT_ALLOWED", { allow: allowed.join(", ") });
}
