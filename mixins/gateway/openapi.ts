import type { RouteDoc, RouteMethod } from "./routes.ts";

/** A JSON Schema (2020-12) object. */
export type JsonSchema = Record<string, unknown>;

/** Error statuses the document describes with the shared error envelope. */
export type ErrorStatus = 400 | 401 | 403 | 404 | 413 | 429 | 503;

export interface OpenApiParameter {
	name: string;
	in: "path" | "query";
	required: boolean;
	schema: JsonSchema;
	style?: "deepObject";
	explode?: boolean;
}

export interface OpenApiResponse {
	description: string;
	content?: { "application/json": { schema: JsonSchema } };
}

export interface OpenApiOperation {
	operationId: string;
	summary: string;
	description?: string;
	tags: string[];
	parameters?: OpenApiParameter[];
	requestBody?: { required: boolean; content: { "application/json": { schema: JsonSchema } } };
	security?: Record<string, string[]>[];
	responses: Record<string, OpenApiResponse | { $ref: string }>;
	"x-permission"?: { resource: string; action: string };
}

export type OpenApiPathItem = Partial<Record<Lowercase<RouteMethod>, OpenApiOperation>>;

export interface OpenApiDocument {
	openapi: "3.1.0";
	info: { title: string; version: string; description?: string };
	servers?: { url: string; description?: string }[];
	tags: { name: string }[];
	paths: Record<string, OpenApiPathItem>;
	components: {
		schemas: Record<string, JsonSchema>;
		responses: Record<string, OpenApiResponse>;
		securitySchemes: Record<string, { type: "http"; scheme: "bearer"; bearerFormat: "JWT" }>;
	};
}

export interface OpenApiInput {
	title: string;
	version: string;
	description?: string;
	servers?: { url: string; description?: string }[];
	routes: readonly RouteDoc[];
	/** The `params` schema of a route, by its name; undefined when it has none. */
	paramsOf: (name: string) => Record<string, unknown> | undefined;
	/** `error.code` values each status may carry: its response narrows the envelope's `code` to them. */
	errorCodes?: Partial<Record<ErrorStatus, readonly string[]>>;
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

const ERROR_RESPONSES: Record<ErrorStatus, { name: string; description: string }> = {
	400: { name: "BadRequest", description: "The parameters failed validation; `details` lists each failure." },
	401: { name: "Unauthorized", description: "The access token is missing, invalid, expired or revoked." },
	403: { name: "Forbidden", description: "The caller lacks the permission the route requires." },
	404: { name: "NotFound", description: "No such resource." },
	413: { name: "PayloadTooLarge", description: "The request body is larger than the gateway accepts." },
	429: { name: "TooManyRequests", description: "Too many requests; retry later." },
	503: { name: "ServiceUnavailable", description: "A service the route needs is unavailable; retry later." }
};

const SUCCESS_DESCRIPTIONS: Record<RouteDoc["status"], string> = {
	200: "OK",
	201: "Created",
	202: "Accepted",
	204: "No content"
};

const ERROR_SCHEMA: JsonSchema = {
	type: "object",
	required: ["error"],
	properties: {
		error: {
			type: "object",
			required: ["code", "message", "requestId"],
			properties: {
				code: { type: "string", description: "Machine-readable error code." },
				message: { type: "string" },
				requestId: { type: "string", description: "Correlates the answer with the gateway's logs." },
				details: { type: "array" }
			}
		}
	}
};

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

function errorResponse(status: ErrorStatus, codes: readonly string[] | undefined): OpenApiResponse {
	const ref = { $ref: "#/components/schemas/Error" };
	const schema: JsonSchema =
		codes && codes.length > 0
			? { allOf: [ref, { properties: { error: { properties: { code: { enum: [...codes] } } } } }] }
			: ref;
	return { description: ERROR_RESPONSES[status].description, content: { "application/json": { schema } } };
}

function operationFor(route: RouteDoc, pathNames: string[], params: Record<string, unknown> | undefined): OpenApiOperation {
	const op: OpenApiOperation = { operationId: route.name, summary: route.summary, tags: [route.tag], responses: {} };
	const parameters: OpenApiParameter[] = pathNames.map(name => {
		const rule = params?.[name];
		return { name, in: "path", required: true, schema: rule === undefined ? { type: "string" } : fastestToJsonSchema(rule) };
	});
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
	if (route.auth) op.security = [{ bearer: [] }];
	if (route.permission) {
		const { resource, action } = route.permission;
		op.description = `Requires the \`${resource}:${action}\` permission.`;
		op["x-permission"] = { resource, action };
	}

	const success: OpenApiResponse = { description: SUCCESS_DESCRIPTIONS[route.status] };
	if (route.status !== 204 && route.response) success.content = { "application/json": { schema: route.response } };
	op.responses[String(route.status)] = success;
	return op;
}

function errorStatusesOf(route: RouteDoc): ErrorStatus[] {
	const statuses: ErrorStatus[] = [400];
	if (route.auth) statuses.push(401);
	if (route.permission) statuses.push(403);
	statuses.push(404);
	if (BODY_METHODS.has(route.method)) statuses.push(413);
	statuses.push(429, 503);
	return statuses;
}

/**
 * The OpenAPI 3.1 document of a gateway: one operation per route, parameters and bodies from the
 * route's `params` schema, errors in the shared envelope. Throws on a route table that
 * cannot make a valid document (two routes on one method and path, one name on two routes,
 * alias syntax OpenAPI has no form for).
 */
export function openApiDocument(input: OpenApiInput): OpenApiDocument {
	const paths: Record<string, OpenApiPathItem> = {};
	const responses: Record<string, OpenApiResponse> = {};
	const operationIds = new Set<string>();
	// OpenAPI forbids two templates that differ only in parameter names (`/u/{id}`, `/u/{uid}`).
	const shapes = new Map<string, string>();
	const tags = new Set<string>();

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

		const op = operationFor(route, names, input.paramsOf(route.name));
		for (const status of errorStatusesOf(route)) {
			const { name } = ERROR_RESPONSES[status];
			responses[name] ??= errorResponse(status, input.errorCodes?.[status]);
			op.responses[String(status)] = { $ref: `#/components/responses/${name}` };
		}
		item[method] = op;
	}

	const doc: OpenApiDocument = {
		openapi: "3.1.0",
		info: { title: input.title, version: input.version },
		tags: [...tags].sort().map(name => ({ name })),
		paths,
		components: {
			schemas: { Error: structuredClone(ERROR_SCHEMA) },
			responses,
			securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" } }
		}
	};
	if (input.description !== undefined) doc.info.description = input.description;
	if (input.servers) doc.servers = input.servers.map(s => ({ ...s }));
	return doc;
}
