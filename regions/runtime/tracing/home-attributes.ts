import type { Attributes } from "@opentelemetry/api";
import type { Context } from "moleculer";
import type { HomeMeta } from "../../home-router.ts";

/**
 * What a home-routed action's span says about its routing: the user's home (the region it ran in,
 * as the exporter says on every span), the user's epoch as the caller knew it, the hops it took and
 * the region it came from. Nothing about the user itself: no id, name or address. Calls the handler
 * makes carry its `$home` along in their meta, so only an action routed by a user (`home: "userId"`)
 * gets these.
 */
export function homeSpanAttributes(ctx: Context): Attributes | undefined {
	const home = (ctx.meta as { $home?: HomeMeta } | undefined)?.$home;
	const spec = (ctx.action as { home?: unknown } | undefined)?.home;
	if (!home || spec === undefined || (typeof spec === "object" && spec !== null && "region" in spec)) return undefined;
	const region = (ctx.broker.metadata as { region?: string }).region;
	return {
		...(region ? { "edgehome.user.home_region": region } : {}),
		"edgehome.user.epoch": home.epoch,
		"edgehome.route.hops": home.hops,
		"edgehome.route.origin_region": home.originRegion,
		"edgehome.route.forwarded": home.originRegion !== region
	};
}
