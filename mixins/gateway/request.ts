import { Errors } from "moleculer";
import type { GatewayRequest, GatewayRoute } from "./routes.ts";

/**
 * What a request must look like before its parameters are validated: a JSON body without keys that
 * reach an object's prototype, a body encoding we decode, and each parameter from one place (the
 * query string or the body, by method; the path for path parameters), so no part overrides another.
 */

/** Keys that reach or replace a prototype once a parsed body is merged or copied (`Object.assign` sets `__proto__`). */
const PROTOTYPE_KEYS = new Set(["__proto__", "constructor", "prototype"]);

/** The body encodings decoded: none, and gzip (every HTTP client has it; the others are refused). */
export const BODY_ENCODINGS = "gzip";
const DECODED = new Set(["identity", "gzip"]);

/** Why a JSON body holding a prototype key is refused. moleculer-web keeps only a body error's message and type, so the message tells it apart. */
export const FORBIDDEN_KEY = "request body holds a forbidden key (__proto__, constructor or prototype)";

/** JSON.parse reviver: sees every key of every object at any depth, after unescaping (`\u005f_proto__` too). */
export function refusePrototypeKeys(key: string, value: unknown): unknown {
	if (PROTOTYPE_KEYS.has(key)) throw new SyntaxError(FORBIDDEN_KEY);
	return value;
}

/** 415 for a body encoding we do not decode, before any of the body is read. */
export function checkContentEncoding(req: GatewayRequest): void {
	const encoding = req.headers["content-encoding"];
	if (encoding !== undefined && !DECODED.has(encoding.trim().toLowerCase()))
		throw new Errors.MoleculerClientError("request body encoding is not supported", 415, "encoding.unsupported");
}

function keysOf(value: unknown): string[] {
	return value && typeof value === "object" ? Object.keys(value) : [];
}

function refuse(fields: string[], message: string): never {
	throw new Errors.ValidationError(
		"Parameters validation error!",
		"VALIDATION_ERROR",
		fields.slice(0, 20).map(field => ({ field, message }))
	);
}

/**
 * The route's parameters: for GET and DELETE the query string, for the others the JSON body; plus
 * path parameters. Anything sent in the other place, or a path parameter sent again, is refused:
 * a password in a URL ends up in logs, and a second source of a value is a way to smuggle one.
 */
export function routeParams(route: GatewayRoute, req: GatewayRequest): Record<string, unknown> {
	const fromQuery = route.method === "GET" || route.method === "DELETE";
	const stray = keysOf(fromQuery ? req.body : req.query);
	if (stray.length)
		refuse(stray, fromQuery ? "this route takes no request body: send it in the query string" : "must be sent in the JSON body, not in the query string");
	const pathKeys = req.$alias?.keys;
	if (pathKeys?.length) {
		const given = keysOf(fromQuery ? req.query : req.body);
		const again = pathKeys.map(k => k.name).filter(name => given.includes(name));
		if (again.length) refuse(again, "is given in the path");
	}
	return req.$params ?? {};
}
