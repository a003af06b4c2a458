/**
 * What the gateways answer on success, as JSON Schema 2020-12, each named once: the OpenAPI documents
 * publish them and the contract test holds every answer to them. Objects list the fields always
 * present as `required` and stay open, so a field added later breaks no client.
 */

type Schema = Record<string, unknown>;

const string = { type: "string" } as const;
const nullableString = { type: ["string", "null"] } as const;
const timestamp = { type: "string", format: "date-time" } as const;
const strings = { type: "array", items: string } as const;

/** An object whose listed properties are all required. */
function record(properties: Record<string, Schema>, optional: Record<string, Schema> = {}): Schema {
	return { type: "object", required: Object.keys(properties), properties: { ...properties, ...optional } };
}

function listOf(item: Schema): Schema {
	return { type: "array", items: item };
}

export const registeredUser = record({ id: string, username: string, region: string });

export const tokens = record({
	accessToken: string,
	refreshToken: string,
	tokenType: { const: "Bearer" },
	expiresIn: { type: "integer", description: "Seconds the access token is valid for." },
	region: { ...string, description: "The user's home region." }
});

/** The WeChat login's tokens say whether this login registered the user. */
export const wxTokens = {
	...tokens,
	required: [...(tokens.required as string[]), "created"],
	properties: { ...(tokens.properties as Schema), created: { type: "boolean" } }
};

const profileFields = {
	id: string,
	username: string,
	email: nullableString,
	phone: nullableString,
	country: nullableString,
	region: string,
	createdAt: timestamp
};

export const profile = record(profileFields);

export const sessions = listOf(record({ sid: string, client: string, createdAt: timestamp, lastUsedAt: timestamp, current: { type: "boolean" } }));

const regionStatus = { enum: ["up", "down", "unknown"] };

export const regions = listOf(record({ id: string, name: string, status: regionStatus }));

export const jwks = record({ keys: listOf(record({ kty: string, kid: string, alg: string, use: string })) });

export const openApiDocument = record({ openapi: string, info: { type: "object" }, paths: { type: "object" } });

export const liveness = record({ status: { const: "ok" } });

/** Also the body of the 503 answer: `checks` names the failing one. */
export const readiness = record({ status: { enum: ["ready", "not ready"] }, checks: { type: "object", additionalProperties: string } });

export const userPage = record({
	items: listOf(record(profileFields)),
	total: { type: "integer" },
	page: { type: "integer" },
	pageSize: { type: "integer" },
	region: string
});

export const staffUserView = record({ ...profileFields, epoch: { type: "integer" }, state: { enum: ["active", "moving"] }, roles: strings });

const moveFields = { moveId: string, userId: string, from: string, to: string, state: { enum: ["running", "moved", "rolled-back", "failed"] } };

export const moveStarted = record(moveFields);

export const moveProgress = record(
	{ ...moveFields, startedAt: { type: "integer", description: "Epoch milliseconds." } },
	{ finishedAt: { type: "integer" }, error: string, step: { ...string, description: "Where a running move is." } }
);

export const staffRegions = listOf(record({ id: string, name: string, status: regionStatus, countries: strings, residency: strings }));

const permission = record({ resource: string, action: string });

export const roles = record({ roles: listOf(record({ role: string, inherits: strings, permissions: listOf(permission) })) });

export const rolePermissions = record({
	role: string,
	inherits: strings,
	permissions: listOf(record({ resource: string, action: string, inheritedFrom: nullableString }))
});

export const permissionChange = record({ role: string, resource: string, action: string, changed: { type: "boolean" } });

export const userRoles = record({ userId: string, roles: strings, direct: strings });

export const roleGrant = record({ userId: string, role: string, changed: { type: "boolean" } });

/** The docs page and its files: HTML, scripts, style sheets and images, not JSON. */
export const file = string;
