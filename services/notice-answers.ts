import { CATEGORIES, CHANNELS, LOCALES } from "./sv-notice/categories.ts";

/**
 * What the notice routes answer on success, as JSON Schema 2020-12 (as mixins/gateway/response-schemas.ts
 * has the others'), built from sv-notice's own categories, channels and locales. Objects list the
 * fields always present as `required` and stay open.
 */

type Schema = Record<string, unknown>;

function record(properties: Record<string, Schema>): Schema {
	return { type: "object", required: Object.keys(properties), properties };
}

const count = { type: "integer", minimum: 0 };

export const notice = record({
	id: { type: "string" },
	seq: { type: "integer", minimum: 1, description: "The notice's number among the user's, one more than the one before: the live stream's event id." },
	category: { enum: [...CATEGORIES] },
	title: { type: "string" },
	text: { type: "string", description: "The body as plain text." },
	html: { type: "string", description: "The body as HTML, every value in it escaped." },
	read: { type: "boolean" },
	createdAt: { type: "string", format: "date-time" }
});

export const noticePage = record({
	items: { type: "array", items: notice },
	nextCursor: { type: ["integer", "null"], description: "Pass as `cursor` for the next (older) page; null on the last." }
});

export const unreadCount = record({ unread: count });

export const readAll = record({ marked: { ...count, description: "How many notices this marked read." }, unread: count });

export const preferences = record({
	locale: { enum: [...LOCALES], description: "The language notices are written in (English where a template has no text in it)." },
	channels: record(Object.fromEntries(CHANNELS.map(channel => [channel, record(Object.fromEntries(CATEGORIES.map(c => [c, { type: "boolean" }])))])))
});

export const eventStream = {
	type: "string",
	description:
		"Server-Sent Events: `retry:` first, then `event: notice` (`id:` the notice's `seq`, `data:` the notice as JSON), " +
		'`event: unread-count` (`data:` `{"unread": n}`) and heartbeat comments (`:`).'
};
