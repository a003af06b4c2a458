import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { Errors } from "moleculer";
import { actorOf, audit } from "../../mixins/audit.mixin.ts";
import type { DbVars } from "../../mixins/db.mixin.ts";
import { dbMixin } from "../../mixins/db.mixin.ts";
import { metricsMixin } from "../../mixins/metrics.mixin.ts";
import { ConfigNotFoundError, ValueTooLargeError } from "./errors.ts";
import { migrations } from "./migrations.ts";
import type { ConfigEntry, ConfigScope, ConfigTables } from "./store.ts";
import { ConfigStore } from "./store.ts";

/** Largest accepted value, as serialised JSON. */
export const MAX_VALUE_BYTES = 16 * 1024;
export const MAX_PAGE_SIZE = 100;

const key = {
	type: "string",
	pattern: /^[a-z0-9][a-z0-9._-]{0,127}$/,
	messages: { stringPattern: "key must be 1-128 of [a-z0-9._-], starting with a letter or digit" }
} as const;
const scope = { type: "enum", values: ["global", "region"] } as const;

interface Vars extends DbVars<ConfigTables> {
	store: ConfigStore;
}

function serialise(value: unknown): string {
	const text = JSON.stringify(value);
	if (text === undefined) throw new Errors.ValidationError("value must be JSON", "VALIDATION_FAILED", [{ field: "value", type: "json" }]);
	if (Buffer.byteLength(text) > MAX_VALUE_BYTES) throw new ValueTooLargeError(MAX_VALUE_BYTES);
	return text;
}

/**
 * Configuration center of a region: global defaults and this region's overrides,
 * every change a new version, so history and rollback need nothing extra.
 */
const svConfig: ServiceSchema<ServiceSettingSchema, Record<string, never>, Vars> = {
	name: "sv-config",
	mixins: [dbMixin<ConfigTables>(migrations), metricsMixin()],

	actions: {
		get: {
			params: { $$strict: true, key, scope: { ...scope, optional: true } },
			cache: { keys: ["key", "scope"] },
			async handler(ctx: Context<{ key: string; scope?: ConfigScope }>): Promise<ConfigEntry> {
				const { key: k, scope: s } = ctx.params;
				const entry = s ? await this.store.current(s, k) : ((await this.store.current("region", k)) ?? (await this.store.current("global", k)));
				if (!entry) throw new ConfigNotFoundError(k);
				return entry;
			}
		},

		set: {
			// Configuration is the operators': set and rollback take a signed call (deploy/README.md).
			restricted: "config",
			params: { $$strict: true, key, value: { type: "any" }, scope: { ...scope, default: "region" } },
			async handler(ctx: Context<{ key: string; value: unknown; scope: ConfigScope }, { user?: { id?: string } }>) {
				const entry = await this.store.append(ctx.params.scope, ctx.params.key, serialise(ctx.params.value), ctx.meta.user?.id ?? null);
				await ctx.broadcast("config.changed", { key: entry.key, scope: entry.scope, version: entry.version });
				await audit(this.broker, ctx, {
					actor: actorOf(ctx, "sv-config"),
					action: "config.set",
					target: entry.key,
					outcome: "success",
					detail: { scope: entry.scope, version: entry.version }
				});
				return entry;
			}
		},

		rollback: {
			restricted: "config",
			params: { $$strict: true, key, scope, version: { type: "number", integer: true, positive: true, convert: true } },
			async handler(ctx: Context<{ key: string; scope: ConfigScope; version: number }, { user?: { id?: string } }>) {
				const { key: k, scope: s, version } = ctx.params;
				const target = await this.store.version(s, k, version);
				if (!target) throw new ConfigNotFoundError(k, version);
				const entry = await this.store.append(s, k, JSON.stringify(target.value), ctx.meta.user?.id ?? null);
				await ctx.broadcast("config.changed", { key: entry.key, scope: entry.scope, version: entry.version });
				await audit(this.broker, ctx, {
					actor: actorOf(ctx, "sv-config"),
					action: "config.rollback",
					target: entry.key,
					outcome: "success",
					detail: { scope: entry.scope, to: version, version: entry.version }
				});
				return entry;
			}
		},

		history: {
			params: {
				$$strict: true,
				key,
				scope: { ...scope, default: "region" },
				limit: { type: "number", integer: true, min: 1, max: MAX_PAGE_SIZE, default: 20, convert: true }
			},
			async handler(ctx: Context<{ key: string; scope: ConfigScope; limit: number }>) {
				return this.store.history(ctx.params.scope, ctx.params.key, ctx.params.limit);
			}
		},

		list: {
			params: {
				$$strict: true,
				prefix: { type: "string", max: 128, pattern: /^[a-z0-9._-]*$/, default: "" },
				page: { type: "number", integer: true, min: 1, max: 100_000, default: 1, convert: true },
				pageSize: { type: "number", integer: true, min: 1, max: MAX_PAGE_SIZE, default: 20, convert: true }
			},
			async handler(ctx: Context<{ prefix: string; page: number; pageSize: number }>) {
				const { prefix, page, pageSize } = ctx.params;
				const { items, total } = await this.store.list(prefix, (page - 1) * pageSize, pageSize);
				return { items, page, pageSize, total };
			}
		}
	},

	events: {
		// Every node of the region drops its cached reads, whichever node took the write.
		"config.changed": {
			async handler() {
				await this.broker.cacher?.clean("sv-config.**");
			}
		}
	},

	started() {
		this.store = new ConfigStore(this.db, this.dialect);
	}
};

export default svConfig;
