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

export const announcementStarted = record({ id: string });

const count = { type: "integer", minimum: 0 } as const;

export const announcementProgress = record({
	id: string,
	title: string,
	regions: {
		type: "object",
		description:
			"Each region the announcement goes to: its users when the region began, those with the entry, those pushed live, those that failed (after their retries), and why they failed, by error type.",
		additionalProperties: record(
			{ targeted: count, written: count, pushed: count, failed: count, done: { type: "boolean" } },
			{ failures: listOf(record({ type: string, message: { ...string, description: "The latest error of this type." }, users: count })) }
		)
	},
	createdAt: timestamp
});

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

/* What the admin console reads besides the routes above (api-cms, issue #16). */

export const myPermissions = record({
	userId: string,
	roles: { ...strings, description: "Every role the caller acts with, inherited ones and `user` included." },
	permissions: { ...listOf(permission), description: "Each permission those roles hold; action `*` covers every action on its resource." }
});

export const staffSessions = listOf(record({ sid: string, client: string, createdAt: timestamp, lastUsedAt: timestamp }));

export const regionNodes = record({
	region: string,
	nodes: listOf(record({ id: string, group: { ...nullableString, description: "The service group the node runs." }, services: strings }))
});

export const regionCensus = record({
	users: { type: "object", additionalProperties: count, description: "Users homed in each region, by region id." },
	total: count,
	complete: { type: "boolean", description: "False when the count stopped at its limit: `total` is a lower bound." }
});

/** The docs page and its files: HTML, scripts, style sheets and images, not JSON. */
export const file = string;

/* sv-money's staff answers (api-cms, issue #13). Amounts are strings of integers of minor units. */

const minorUnits = { ...string, pattern: "^-?[0-9]+$", description: 'An integer of minor units, as a string (JPY 500 is "500", USD 5.00 is "500").' };

export const staffWallet = record({
	userId: string,
	frozen: { type: "boolean" },
	balances: listOf(
		record({
			currency: string,
			balance: minorUnits,
			available: { ...minorUnits, description: "The balance less pending holds." },
			pending: { ...minorUnits, description: "Held for pending holds." }
		})
	)
});

export const walletFreeze = record({ userId: string, frozen: { type: "boolean" } });

export const reconciliation = record({
	region: string,
	ok: { type: "boolean", description: "Every account's balance is the sum of its entries, and every currency sums to zero." },
	checkedAt: timestamp,
	accounts: { type: "integer" },
	currencies: listOf(record({ currency: string, sum: minorUnits, ok: { type: "boolean" } })),
	mismatches: listOf(record({ account: string, currency: string, balance: minorUnits, entries: minorUnits })),
	negative: listOf(record({ account: string, currency: string, balance: minorUnits }))
});

/* The caller's own wallet (every gateway, issue #13). */

const amount = { ...minorUnits, pattern: "^[0-9]+$" };
const currency = { ...string, pattern: "^[A-Z]{3}$", description: "ISO 4217 code." };
const party = { ...string, description: "A user id, or `system:issuance` for an operator's adjustment." };

export const transferView = record({
	id: string,
	status: { enum: ["completed", "pending", "failed"], description: "`pending` until a transfer to another region is credited there." },
	from: party,
	to: party,
	amount,
	currency,
	memo: { ...nullableString, description: "The payer's note, or an operator's reason for an adjustment." },
	reason: { ...nullableString, description: "Why a transfer failed (a stable code: `WALLET_FROZEN`, `RECIPIENT_NOT_FOUND`, `CURRENCY_NOT_SUPPORTED`)." },
	createdAt: timestamp,
	completedAt: { type: ["string", "null"], format: "date-time" }
});

export const holdView = record({
	id: string,
	status: { enum: ["pending", "captured", "voided", "expired"] },
	from: string,
	to: string,
	amount,
	currency,
	memo: nullableString,
	createdAt: timestamp,
	expiresAt: timestamp,
	transferId: { ...nullableString, description: "The transfer its capture made." }
});

/** The caller's wallet: the view staff get of anyone's. */
export const wallet = staffWallet;

export const entryPage = record({
	items: listOf(
		record({
			id: string,
			transferId: string,
			currency,
			amount: { ...minorUnits, description: "Negative when money left the account." },
			kind: string,
			counterparty: nullableString,
			memo: nullableString,
			createdAt: timestamp
		})
	),
	nextCursor: { ...nullableString, description: "Pass as `cursor` for the next (older) page; null on the last." }
});

/* The notice channels' dead letters (api-cms, issue #14). */

const noticeChannel = { enum: ["email", "webhook"] };

export const noticeDeadLetters = record({
	region: string,
	items: listOf(
		record({
			id: string,
			channel: noticeChannel,
			noticeId: string,
			userId: string,
			category: string,
			title: string,
			error: { ...string, description: "The last delivery's error." },
			errorType: { ...nullableString, description: "Its stable code, e.g. `NOTICE_DELIVERY_FAILED`." },
			attempts: { type: "integer" },
			at: { ...timestamp, description: "When it was given up on." }
		})
	)
});

export const noticeDeadLetterReplay = record({
	id: string,
	channel: noticeChannel,
	region: string,
	replayedAs: { ...string, description: "The id it was delivered again as." }
});
