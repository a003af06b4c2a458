import type { CallingOptions, Span } from "moleculer";
import type { HomeEntry } from "../../directory/entries.ts";
import { OTEL_TAG } from "./semantics.ts";

/** What a call's options name as the parent of what runs next: a span, or the caller's context. */
type ParentRef = Pick<Span, "id" | "traceID" | "sampled">;

const routings = new WeakMap<CallingOptions, Span>();

function parentOf(o: CallingOptions): Span | undefined {
	return (o.parentSpan as Span | undefined) ?? (o.parentCtx?.span as Span | undefined) ?? undefined;
}

/**
 * The options of a user call with its routing span opened, when the caller's trace is sampled:
 * what the call runs next (here or through a link) is that span's child. Otherwise the options
 * as they are: an unsampled call costs one property read.
 */
export function withRoutingSpan(o: CallingOptions, actionName: string): CallingOptions {
	const parent = parentOf(o);
	if (!parent?.sampled) return o;
	const span = parent.startSpan(`route ${actionName}`, { type: "route", tags: { [OTEL_TAG]: { "edgehome.route.action": actionName } } });
	const routed = { ...o, parentSpan: span };
	routings.set(routed, span);
	return routed;
}

/**
 * `call` itself, its routing span (if any) closed once it settles with where the user's home
 * turned out to be (`home`, read then) and whether the call left this region.
 */
export function settleRouting<T extends Promise<unknown>>(o: CallingOptions, call: T, region: string, home: () => HomeEntry | undefined): T {
	const span = routings.get(o);
	if (!span) return call;
	const end = (err?: unknown) => {
		const entry = home();
		if (entry)
			span.addTags({
				[OTEL_TAG]: {
					...(span.tags[OTEL_TAG] as object),
					"edgehome.user.home_region": entry.region,
					"edgehome.user.epoch": entry.epoch,
					"edgehome.route.forwarded": entry.region !== region
				}
			});
		if (err !== undefined) span.setError(err as Error);
		span.finish();
	};
	call.then(() => end(), end);
	return call;
}

export interface LinkHop {
	/** What the link call adds to its options: the parent (and sampling) the other region continues. */
	options: { parentSpan: ParentRef };
	span?: Span;
}

/**
 * The hop of a call through a link to another region: a client span when the trace is sampled,
 * and in any case the parent and sampling decision the call carries over (Moleculer sends them
 * with the request), so the other region continues the trace instead of deciding anew.
 */
export function linkHop(tracing: boolean, o: CallingOptions, target: string, actionName: string, hops: number | undefined): LinkHop | undefined {
	if (!tracing) return undefined;
	const parent = parentOf(o);
	if (parent?.sampled) {
		const dot = actionName.lastIndexOf(".");
		const span = parent.startSpan(`${actionName.slice(0, dot)}/${actionName.slice(dot + 1)}`, {
			type: "link",
			tags: {
				[OTEL_TAG]: {
					"rpc.system": "moleculer",
					"rpc.service": actionName.slice(0, dot),
					"rpc.method": actionName.slice(dot + 1),
					"edgehome.link.region": target,
					...(hops === undefined ? {} : { "edgehome.route.hops": hops })
				}
			}
		});
		return { options: { parentSpan: span }, span };
	}
	if (parent) return { options: { parentSpan: { id: parent.id, traceID: parent.traceID, sampled: false } } };
	const ctx = o.parentCtx;
	return ctx ? { options: { parentSpan: { id: ctx.id, traceID: ctx.requestID ?? ctx.id, sampled: ctx.tracing === true } } } : undefined;
}

/** `call` itself, the hop's span closed once it settles. */
export function settleHop<T extends Promise<unknown>>(hop: LinkHop | undefined, call: T): T {
	const span = hop?.span;
	if (!span) return call;
	call.then(
		() => span.finish(),
		err => {
			span.setError(err);
			span.finish();
		}
	);
	return call;
}
