import type { Attributes } from "@opentelemetry/api";
import type { Context, ServiceSchema } from "moleculer";
import { homeSpanAttributes } from "../regions/runtime/tracing/home-attributes.ts";
import { withoutPersonal } from "../regions/runtime/tracing/pii.ts";
import { OTEL_TAG } from "../regions/runtime/tracing/semantics.ts";

/** Span attributes a service declares for one of its actions: read from the call, under `edgehome.`. */
export type SpanAttributes = (ctx: Context<any>) => Attributes;

export interface TracingMixinOptions {
	/** By action name (as declared in the service): what its spans say besides the runtime's facts. */
	attributes?: Record<string, SpanAttributes>;
}

const NAMESPACE = "edgehome.";

/**
 * Tracing as a service mixes it in: each action's span carries the home routing facts of the call
 * (this region as the user's home, the user's epoch, the hops and the region it came from:
 * regions/runtime/tracing/home-attributes.ts) and the attributes the service declares for it.
 * Never personal data: a declared attribute outside `edgehome.`, under a personal name (email,
 * phone, username, ip, token…) or with a value that looks like one is dropped, and the exporter
 * checks every attribute again. Without tracing (no collector URL) Moleculer asks for none of it.
 */
export function tracingMixin(opts: TracingMixinOptions = {}): Partial<ServiceSchema> {
	const declared = opts.attributes ?? {};
	return {
		// Moleculer calls `merged` once the mixins are merged, before it creates the actions; its typings omit it.
		...({
			merged(schema: ServiceSchema) {
				const actions = schema.actions ?? {};
				const unknown = Object.keys(declared).filter(name => !(name in actions));
				if (unknown.length > 0) throw new Error(`tracingMixin of ${schema.name}: no action ${unknown.join(", ")} to declare span attributes for`);
				for (const [name, action] of Object.entries(actions)) {
					if (!action || typeof action !== "object") continue;
					const own = action.tracing;
					if (own === false || (typeof own === "object" && own.enabled === false)) continue;
					const attributesOf = declared[name];
					action.tracing = { ...(typeof own === "object" ? own : {}), tags: (ctx: Context) => ({ [OTEL_TAG]: spanAttributes(ctx, attributesOf) }) };
				}
			}
		} as object)
	};
}

function spanAttributes(ctx: Context, attributesOf: SpanAttributes | undefined): Attributes {
	const home = homeSpanAttributes(ctx) ?? {};
	if (!attributesOf) return home;
	const own: Attributes = {};
	for (const [key, value] of Object.entries(attributesOf(ctx))) if (key.startsWith(NAMESPACE) && !(key in home)) own[key] = value;
	return { ...home, ...withoutPersonal(own) };
}
