import { toHttpError } from "./errors.ts";
import { IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_HEADER, IDEMPOTENCY_KEY_INVALID, IDEMPOTENCY_KEY_MISSING } from "./idempotency-key.ts";
import type { RouteDoc, RouteMethod } from "./routes.ts";

/** A JSON Schema (2020-12) object. */
export type JsonSchema = Record<string, unknown>;

export interface OpenApiParameter {
	name: string;
	in: "path" | "query" | "header";
	required: boolean;
	description?: string;
	schema: JsonSchema;
	style?: "deepObject";
	explode?: boolean;
}

export interface OpenApiHeader {
	description: string;
	schema: JsonSchema;
}

export interface OpenApiResponse {
	description: string;
	headers?: Record<string, OpenApiHeader>;
	content?: Record<string, { schema: JsonSchema }>;
}

export interface OpenApiOperation {
	operationId: string;
	summary: string;
	description?: string;
	tags: string[];
	parameters?: OpenApiParameter[];
	requestBody?: { required: boolean; content: { "application/json": { schema: JsonSchema } } };
	security: Record<string, string[]>[];
	responses: Record<string, OpenApiResponse>;
	"x-permission"?: { resource: string; action: string };
}

export type OpenApiPathItem = Partial<Record<Lowercase<RouteMethod>, OpenApiOperation>>;

export interface OpenApiDocument {
	openapi: "3.1.0";
	info: { title: string; version: string; description?: string };
	servers: { url: string; description?: string }[];
	tags: { name: string; description?: string }[];
	paths: Record<string, OpenApiPathItem>;
	components: {
		schemas: Record<string, JsonSchema>;
		securitySchemes: Record<string, { type: "http"; scheme: "bearer"; bearerFormat: "JWT" }>;
	};
}

export interface OpenApiInput {
	title: string;
	version: string;
	description?: string;
	/** Where the API answers; by default the origin that serves the document. */
	servers?: { url: string; description?: string }[];
	routes: readonly RouteDoc[];
	/** The `params` schema of a route, by its name; undefined when it has none. */
	paramsOf: (name: string) => Record<string, unknown> | undefined;
	/** Descriptions of the routes' tags, by name. */
	tagDescriptions?: Readonly<Record<string, string>>;
}

type Rule = Record<string, unknown>;

function isRecord(value: unknown): value is Record<string, unknown> {
	return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isMetaKey(key: string): boolean {
	return key.startsWith("$$");
}

/** Shorthand as fastest-validator reads it: `type|key:value|flag|no-flag`, `type[]` for arrays. */
function parseShorthand(text: string): Rule {
	const [head = "", ...parts] = text.split("|").map(p => p.trim());
	const rule: Rule = head.endsWith("[]") ? { type: "array", items: head.slice(0, -2) } : { type: head };
	for (const part of parts) {
		const colon = part.indexOf(":");
		if (colon === -1) {
			if (part.startsWith("no-")) rule[part.slice(3)] = false;
			else rule[part] = true;
			continue;
		}
		const raw = part.slice(colon + 1).trim();
		rule[part.slice(0, colon).trim()] = raw === "true" ? true : raw === "false" ? false : raw !== "" && !Number.isNaN(Number(raw)) ? Number(raw) : raw;
	}
	return rule;
}

/** Any accepted rule form brought to the object form with a `type`. */
function normalize(rule: unknown): Rule {
	if (typeof rule === "string") return parseShorthand(rule);
	if (Array.isArray(rule)) {
		const rules = rule.map(normalize);
		// As in fastest-validator: a list of alternatives is optional (nullable) only if every one is.
		return {
			type: "multi",
			rules,
			optional: rules.length > 0 && rules.every(r => r.optional === true),
			nullable: rules.length > 0 && rules.every(r => r.nullable === true)
		};
	}
	if (!isRecord(rule)) return { type: String(rule) };
	if (rule.$$type !== undefined) {
		const { $$type, ...props } = rule;
		return { ...normalize($$type), props };
	}
	// A bare map of fields is what fastest-validator compiles at the top of an action's params.
	if (typeof rule.type !== "string") return { type: "object", strict: rule.$$strict, props: rule };
	return rule;
}

function numberOf(rule: Rule, key: string): number | undefined {
	const value = rule[key];
	return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

/** Whether a field may be left out: optional, or filled in by a default. */
function mayBeOmitted(rule: unknown): boolean {
	const r = normalize(rule);
	return r.optional === true || r.default !== undefined;
}

function lengthBounds(rule: Rule, minKey: string, maxKey: string): JsonSchema {
	const out: JsonSchema = {};
	const exact = numberOf(rule, "length");
	const min = exact ?? numberOf(rule, "min");
	const max = exact ?? numberOf(rule, "max");
	if (min !== undefined) out[minKey] = min;
	else if (rule.empty === false) out[minKey] = 1;
	if (max !== undefined) out[maxKey] = max;
	return out;
}

function stringSchema(rule: Rule): JsonSchema {
	const out: JsonSchema = { type: "string", ...lengthBounds(rule, "minLength", "maxLength") };
	const pattern = rule.pattern;
	if (pattern instanceof RegExp) out.pattern = pattern.source;
	else if (typeof pattern === "string") out.pattern = pattern;
	if (Array.isArray(rule.enum)) out.enum = [...rule.enum];
	return out;
}

function numberSchema(rule: Rule): JsonSchema {
	const out: JsonSchema = { type: rule.integer === true ? "integer" : "number" };
	const min = numberOf(rule, "min");
	const max = numberOf(rule, "max");
	if (min !== undefined) out.minimum = min;
	if (max !== undefined) out.maximum = max;
	if (rule.positive === true) out.exclusiveMinimum = 0;
	if (rule.negative === true) out.exclusiveMaximum = 0;
	if (rule.equal !== undefined) out.const = rule.equal;
	if (rule.notEqual !== undefined) out.not = { const: rule.notEqual };
	return out;
}

function objectSchema(rule: Rule): JsonSchema {
	const out: JsonSchema = { type: "object" };
	const props = rule.props ?? rule.properties;
	if (isRecord(props)) {
		const properties: Record<string, JsonSchema> = {};
		const required: string[] = [];
		for (const [name, child] of Object.entries(props)) {
			if (isMetaKey(name)) continue;
			properties[name] = fastestToJsonSchema(child);
			if (!mayBeOmitted(child)) required.push(name);
		}
		out.properties = properties;
		if (required.length > 0) out.required = required;
	}
	// `strict: "remove"` drops unknown keys instead of refusing them, so only `true` closes the object.
	if (rule.strict === true || rule.$$strict === true) out.additionalProperties = false;
	const minProps = numberOf(rule, "minProps");
	const maxProps = numberOf(rule, "maxProps");
	if (minProps !== undefined) out.minProperties = minProps;
	if (maxProps !== undefined) out.maxProperties = maxProps;
	return out;
}

function arraySchema(rule: Rule): JsonSchema {
	const out: JsonSchema = { type: "array", ...lengthBounds(rule, "minItems", "maxItems") };
	const items: JsonSchema | undefined = rule.items === undefined ? undefined : fastestToJsonSchema(rule.items);
	if (Array.isArray(rule.enum)) out.items = { ...items, enum: [...rule.enum] };
	else if (items) out.items = items;
	if (rule.unique === true) out.uniqueItems = true;
	if (rule.contains !== undefined) out.contains = { const: rule.contains };
	return out;
}

function unsupported(type: string): JsonSchema {
	return { description: `fastest-validator type "${type}" (no JSON Schema equivalent)` };
}

function byType(rule: Rule): JsonSchema {
	const type = String(rule.type);
	switch (type) {
		case "string":
			return stringSchema(rule);
		case "email":
			return { type: "string", format: "email", ...lengthBounds(rule, "minLength", "maxLength") };
		case "number":
			return numberSchema(rule);
		case "boolean":
			return { type: "boolean" };
		case "enum":
			return Array.isArray(rule.values) ? { enum: [...rule.values] } : unsupported(type);
		case "equal":
			return typeof rule.field === "string" ? { description: `Must equal the "${rule.field}" field.` } : { const: rule.value };
		case "object":
			return objectSchema(rule);
		case "array":
			return arraySchema(rule);
		case "any":
			return {};
		case "multi":
			return Array.isArray(rule.rules) && rule.rules.length > 0 ? { anyOf: rule.rules.map(fastestToJsonSchema) } : unsupported(type);
		default:
			return unsupported(type);
	}
}

/** Widens a schema to accept null as well, keeping `enum` and `const` consistent with the type. */
function withNull(schema: JsonSchema): JsonSchema {
	const out: JsonSchema = { ...schema };
	if (typeof out.type === "string") out.type = [out.type, "null"];
	if (Array.isArray(out.enum)) out.enum = [...out.enum, null];
	if ("const" in out) {
		out.enum = [out.const, null];
		delete out.const;
	}
	if (Array.isArray(out.anyOf) && out.type === undefined) out.anyOf = [...out.anyOf, { type: "null" }];
	return out;
}

/**
 * A fastest-validator rule (shorthand string, object form, list of alternatives, or a bare map
 * of fields as in an action's `params`) as JSON Schema 2020-12. Rules or options with no
 * equivalent loosen the schema rather than fail: an unknown type becomes `{}` with a description.
 */
export function fastestToJsonSchema(rule: unknown): JsonSchema {
	const r = normalize(rule);
	let schema = byType(r);
	if (r.nullable === true) schema = withNull(schema);
	if (r.default !== undefined && typeof r.default !== "function") schema.default = r.default;
	return schema;
}

/** What each error status means, in every operation that may answer it. */
const ERROR_DESCRIPTIONS: Readonly<Record<number, string>> = {
	400: "The request is not valid (parameters, JSON body, a required header); `details` names each failing field, never its value.",
	401: "Not authenticated: the access token, or the credentials sent, are missing, invalid, expired or revoked.",
	403: "Not allowed.",
	404: "No such resource.",
	409: "The request conflicts with the current state.",
	413: "The request body is larger than the gateway accepts (64 kB).",
	415: "The request body's encoding or charset is not supported.",
	422: "The request is well formed but refused by a rule of the service; the code says which.",
	423: "The resource is locked until staff unlock it.",
	429: "Too many requests; retry after `Retry-After` seconds.",
	431: "The request headers are larger than the gateway accepts (16 kB).",
	500: "An unexpected failure; nothing internal is disclosed.",
	502: "A service the route needs is missing or failed.",
	503: "A region, the directory or a service the route needs is unavailable, or the user is moving; retry after `Retry-After` seconds.",
	504: "No answer in time. `OUTCOME_UNKNOWN`: the request was sent and may or may not have been applied; check before repeating it."
};

const SUCCESS_DESCRIPTIONS: Record<RouteDoc["status"], string> = {
	200: "OK",
	201: "Created",
	202: "Accepted",
	204: "No content"
};

/** The tags of the gateways' routes. */
const TAG_DESCRIPTIONS: Readonly<Record<string, string>> = {
	auth: "Registration, login and tokens.",
	me: "The caller's own profile and sessions, served by the caller's home region.",
	regions: "The regions of the cluster.",
	meta: "This document, its Swagger UI, the public keys and health.",
	wallet: "The caller's own wallet: balances, entries, transfers and holds, served by the caller's home region.",
	notices: "The caller's own notices and notice preferences, served by the caller's home region, and their live stream.",
	admin: "Staff administration: users, moves, regions, roles (each route names the permission it needs)."
};

const ERROR_SCHEMA: JsonSchema = {
	type: "object",
	required: ["error"],
	properties: {
		error: {
			type: "object",
			required: ["code", "message", "requestId"],
			properties: {
				code: { type: "string", description: "Machine-readable error code, stable across releases." },
				message: { type: "string", description: "What went wrong, for people." },
				requestId: { type: "string", description: "Correlates the answer with the gateway's logs (also in `X-Request-Id`)." },
				details: {
					type: "array",
					description: "Each field that failed validation.",
					items: { type: "object", required: ["field", "message"], properties: { field: { type: "string" }, message: { type: "string" } } }
				}
			}
		}
	}
};

const RETRY_AFTER: OpenApiHeader = { description: "Seconds to wait before retrying.", schema: { type: "integer", minimum: 1 } };
const WWW_AUTHENTICATE: OpenApiHeader = { description: "The bearer challenge.", schema: { type: "string" } };
const HEADERS_OF: Readonly<Record<number, Record<string, OpenApiHeader>>> = {
	401: { "WWW-Authenticate": WWW_AUTHENTICATE },
	429: { "Retry-After": RETRY_AFTER },
	503: { "Retry-After": RETRY_AFTER },
	504: { "Retry-After": RETRY_AFTER }
};

/** The origin serving the document: it is the same in every region, each gateway answering on its own port. */
const SAME_ORIGIN = [{ url: "/", description: "The gateway that serves this document (every region's gateway of this client type answers the same API)." }];

const BODY_METHODS: ReadonlySet<RouteMethod> = new Set(["POST", "PUT", "PATCH"]);

/** `/users/:id` → `/users/{id}` and the parameter names, refusing alias syntax OpenAPI cannot express. */
function openApiPath(path: string): { path: string; names: string[] } {
	const names: string[] = [];
	const segments = path.split("/").map(segment => {
		const param = /^:([A-Za-z_][A-Za-z0-9_]*)$/.exec(segment);
		if (param?.[1] !== undefined) {
			if (names.includes(param[1])) throw new Error(`OpenAPI: path ${path} repeats the parameter ${param[1]}`);
			names.push(param[1]);
			return `{${param[1]}}`;
		}
		if (/[:*?+()]/.test(segment)) throw new Error(`OpenAPI: path ${path} uses alias syntax with no OpenAPI equivalent`);
		return segment;
	});
	return { path: segments.join("/"), names };
}

/**
 * The error codes a route may answer, by status: the edge's own (validation, authentication,
 * permission, body limits, rate limits, header limits, internal failures), then each error the
 * route declares as the gateway maps it for clients.
 */
export function errorCodesOf(route: RouteDoc): Map<number, string[]> {
	const codes = new Map<number, Set<string>>();
	const add = (status: number, code: string) => codes.set(status, (codes.get(status) ?? new Set()).add(code));
	add(400, "VALIDATION_FAILED");
	add(400, "BAD_REQUEST");
	if (route.auth) add(401, "UNAUTHORIZED");
	if (route.permission) add(403, "FORBIDDEN");
	if (BODY_METHODS.has(route.method)) {
		add(413, "PAYLOAD_TOO_LARGE");
		add(415, "UNSUPPORTED_MEDIA_TYPE");
	}
	if (route.idempotencyKey) {
		add(400, IDEMPOTENCY_KEY_MISSING);
		add(400, IDEMPOTENCY_KEY_INVALID);
	}
	add(429, "RATE_LIMITED");
	add(431, "HEADERS_TOO_LARGE");
	add(500, "INTERNAL");
	for (const declared of route.errors ?? []) {
		const answer = toHttpError({ type: declared.type, code: declared.status, message: "" }, true, [declared]);
		add(answer.status, answer.code);
	}
	return new Map([...codes].sort(([a], [b]) => a - b).map(([status, set]) => [status, [...set].sort()]));
}

function errorResponse(status: number, codes: readonly string[]): OpenApiResponse {
	const response: OpenApiResponse = {
		description: `${ERROR_DESCRIPTIONS[status] ?? "An error."} Codes: ${codes.map(c => `\`${c}\``).join(", ")}.`,
		content: {
			"application/json": {
				schema: { allOf: [{ $ref: "#/components/schemas/Error" }, { properties: { error: { properties: { code: { enum: [...codes] } } } } }] }
			}
		}
	};
	const headers = HEADERS_OF[status];
	if (headers) response.headers = { ...headers };
	return response;
}

/** The header of a route with `idempotencyKey`. */
const IDEMPOTENCY_KEY_PARAMETER: OpenApiParameter = {
	name: IDEMPOTENCY_KEY_HEADER,
	in: "header",
	required: true,
	description: "The client's name for this one operation (a UUID, say): a retry with the same key and request gets the first answer, not a second operation.",
	schema: { type: "string", minLength: 1, maxLength: 255, pattern: IDEMPOTENCY_KEY.source }
};

/** The header an event stream's client sends when it reconnects (the Server-Sent Events standard). */
const LAST_EVENT_ID_PARAMETER: OpenApiParameter = {
	name: "Last-Event-ID",
	in: "header",
	required: false,
	description: "The id of the last event received: the stream resumes after it, sending what was missed first.",
	schema: { type: "string", pattern: "^[0-9]{1,15}$" }
};

function descriptionOf(route: RouteDoc): string {
	const who = route.auth ? "Needs a bearer access token issued for this gateway's client type." : "Public: no token needed.";
	const needs = route.permission ? `${who} Requires the \`${route.permission.resource}:${route.permission.action}\` permission.` : who;
	return route.description ? `${needs} ${route.description}` : needs;
}

function successResponse(route: RouteDoc, description: string): OpenApiResponse {
	const success: OpenApiResponse = { description };
	if (route.status !== 204 && route.response) {
		success.content = Object.fromEntries((route.mediaTypes ?? ["application/json"]).map(type => [type, { schema: route.response! }]));
	}
	return success;
}

function operationFor(route: RouteDoc, pathNames: string[], params: Record<string, unknown> | undefined): OpenApiOperation {
	const op: OpenApiOperation = {
		operationId: route.name,
		summary: route.summary,
		description: descriptionOf(route),
		tags: [route.tag],
		security: route.auth ? [{ bearer: [] }] : [],
		responses: {}
	};
	const parameters: OpenApiParameter[] = pathNames.map(name => {
		const rule = params?.[name];
		return { name, in: "path", required: true, schema: rule === undefined ? { type: "string" } : fastestToJsonSchema(rule) };
	});
	if (route.idempotencyKey) parameters.push({ ...IDEMPOTENCY_KEY_PARAMETER, schema: { ...IDEMPOTENCY_KEY_PARAMETER.schema } });
	if (route.stream) parameters.push({ ...LAST_EVENT_ID_PARAMETER, schema: { ...LAST_EVENT_ID_PARAMETER.schema } });
	const rest = Object.entries(params ?? {}).filter(([name]) => !isMetaKey(name) && !pathNames.includes(name));
	if (BODY_METHODS.has(route.method)) {
		if (rest.length > 0) {
			const body = objectSchema({ props: Object.fromEntries(rest), strict: params?.$$strict });
			op.requestBody = { required: Array.isArray(body.required), content: { "application/json": { schema: body } } };
		}
	} else {
		for (const [name, rule] of rest) {
			const schema = fastestToJsonSchema(rule);
			const param: OpenApiParameter = { name, in: "query", required: !mayBeOmitted(rule), schema };
			// moleculer-web parses `a[b]=1` into nested objects.
			if (schema.type === "object") {
				param.style = "deepObject";
				param.explode = true;
			}
			parameters.push(param);
		}
	}
	if (parameters.length > 0) op.parameters = parameters;
	if (route.permission) op["x-permission"] = { ...route.permission };

	op.responses[String(route.status)] = successResponse(route, SUCCESS_DESCRIPTIONS[route.status]);
	// Every GET answer with a body carries a weak ETag; an event stream has no body to tag.
	if (route.method === "GET" && route.status !== 204 && !route.stream)
		op.responses["304"] = { description: "Not modified: `If-None-Match` holds the current ETag." };
	for (const [status, codes] of errorCodesOf(route)) {
		if (route.alsoAnswers?.[status] === undefined) op.responses[String(status)] = errorResponse(status, codes);
	}
	for (const [status, description] of Object.entries(route.alsoAnswers ?? {})) op.responses[status] = successResponse(route, description);
	return op;
}

/**
 * The OpenAPI 3.1 document of a gateway: one operation per route, parameters and bodies from the
 * route's `params` schema, every status the route answers, errors in the shared envelope with
 * their codes. Throws on a route table that cannot make a valid document (two routes on one
 * method and path, one name on two routes, alias syntax OpenAPI has no form for).
 */
export function openApiDocument(input: OpenApiInput): OpenApiDocument {
	const paths: Record<string, OpenApiPathItem> = {};
	const operationIds = new Set<string>();
	// OpenAPI forbids two templates that differ only in parameter names (`/u/{id}`, `/u/{uid}`).
	const shapes = new Map<string, string>();
	const tags = new Set<string>();
	const tagDescriptions = input.tagDescriptions ?? TAG_DESCRIPTIONS;

	for (const route of input.routes) {
		const { path, names } = openApiPath(route.path);
		const shape = path.replace(/\{[^}]+\}/g, "{}");
		const seen = shapes.get(shape);
		if (seen !== undefined && seen !== path) throw new Error(`OpenAPI: paths ${seen} and ${path} differ only in parameter names`);
		shapes.set(shape, path);
		const method = route.method.toLowerCase() as Lowercase<RouteMethod>;
		const item = (paths[path] ??= {});
		if (item[method]) throw new Error(`OpenAPI: two routes answer ${route.method} ${route.path}`);
		if (operationIds.has(route.name)) throw new Error(`OpenAPI: operation ${route.name} names more than one route`);
		operationIds.add(route.name);
		tags.add(route.tag);
		item[method] = operationFor(route, names, input.paramsOf(route.name));
	}

	const doc: OpenApiDocument = {
		openapi: "3.1.0",
		info: { title: input.title, version: input.version },
		servers: (input.servers ?? SAME_ORIGIN).map(s => ({ ...s })),
		tags: [...tags].sort().map(name => (tagDescriptions[name] === undefined ? { name } : { name, description: tagDescriptions[name] })),
		paths,
		components: {
			schemas: { Error: structuredClone(ERROR_SCHEMA) },
			securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" } }
		}
	};
	if (input.description !== undefined) doc.info.description = input.description;
	return doc;
}
