import type { EventSchema, Middleware, ServiceBroker } from "moleculer";
import type { RegionLinks } from "./links.ts";
import type { RegionHealth } from "./region-health.ts";

/** Marks a copy relayed from another region (the id of the region it came from); never relayed again. */
export const GLOBAL_FROM = "$globalFrom";

export interface GlobalEventsOptions {
	region: string;
	regions: string[];
	links: RegionLinks;
	/** Regions that are down are skipped rather than waited for. */
	health?: RegionHealth;
}

type EmitOpts = { meta?: Record<string, unknown>; groups?: string | string[] } | string | string[] | undefined;

function withMeta(opts: EmitOpts, meta: Record<string, unknown>): { meta: Record<string, unknown>; groups?: string | string[] } {
	if (typeof opts === "string" || Array.isArray(opts)) return { groups: opts, meta };
	return { ...opts, meta: { ...opts?.meta, ...meta } };
}

/**
 * Events whose listeners declare `global: true` reach every region: the sending node emits or
 * broadcasts them as usual in its own region and, through its link, in each other reachable
 * region (an emit reaches one node per group there, a broadcast every node). A relayed copy
 * carries `$globalFrom` in its meta and is never relayed again, so there are no loops. Delivery
 * to a region that is down is skipped: a listener that must not miss anything also needs a way
 * to catch up (a sequence it can check), as the revocation feed of auth-jwt does.
 */
export function GlobalEvents(opts: GlobalEventsOptions): Middleware {
	const others = opts.regions.filter(r => r !== opts.region);
	const known = new Map<string, boolean>();
	let broker: ServiceBroker;

	function isGlobal(name: string): boolean {
		let global = known.get(name);
		if (global === undefined) {
			const list = broker.registry.getEventList({ skipInternal: true, withEndpoints: false }) as { name: string; event?: EventSchema & { global?: boolean } }[];
			global = list.some(e => e.name === name && e.event?.global === true);
			known.set(name, global);
		}
		return global;
	}

	function relay(kind: "emit" | "broadcast", name: string, payload: unknown, emitOpts: EmitOpts): void {
		if (typeof name !== "string" || !isGlobal(name)) return;
		const meta = typeof emitOpts === "object" && !Array.isArray(emitOpts) ? emitOpts?.meta : undefined;
		if (meta?.[GLOBAL_FROM]) return;
		for (const target of others) {
			if (opts.health && opts.health.status(target) === "down") continue;
			opts.links
				.broker(target)
				.then(link => link[kind](name, payload, withMeta(emitOpts, { [GLOBAL_FROM]: opts.region })))
				.catch(err => broker.logger.warn(`global event ${name} not delivered to ${target}: ${(err as Error).message}`));
		}
	}

	return {
		name: "GlobalEvents",
		created(b: ServiceBroker) {
			broker = b;
			b.localBus.on("$services.changed", () => known.clear());
		},
		emit(next: ServiceBroker["emit"]) {
			return ((name: string, payload?: unknown, emitOpts?: EmitOpts) => {
				relay("emit", name, payload, emitOpts);
				return next(name, payload, emitOpts as never);
			}) as ServiceBroker["emit"];
		},
		broadcast(next: ServiceBroker["broadcast"]) {
			return ((name: string, payload?: unknown, emitOpts?: EmitOpts) => {
				relay("broadcast", name, payload, emitOpts);
				return next(name, payload, emitOpts as never);
			}) as ServiceBroker["broadcast"];
		}
	} as unknown as Middleware;
}
