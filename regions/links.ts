import { ServiceBroker } from "moleculer";
import type { BrokerOptions, CallingOptions } from "moleculer";

/**
 * Links from this node to other regions. Moleculer has no cross-namespace call, so a link is a
 * service-less broker joined to the other region's namespace over the same transport (the NATS
 * supercluster, or the in-process bus when embedded); it discovers that region's services like
 * any of its nodes would. Each link is created on first use, once.
 */
export class RegionLinks {
	private readonly links = new Map<string, Promise<ServiceBroker>>();
	private readonly optionsFor: (regionId: string) => BrokerOptions;
	private readonly discoveryTimeoutMs: number;

	constructor(optionsFor: (regionId: string) => BrokerOptions, discoveryTimeoutMs = 2000) {
		this.optionsFor = optionsFor;
		this.discoveryTimeoutMs = discoveryTimeoutMs;
	}

	/** The started link broker for `regionId`. */
	broker(regionId: string): Promise<ServiceBroker> {
		let link = this.links.get(regionId);
		if (!link) {
			const broker = new ServiceBroker(this.optionsFor(regionId));
			link = broker.start().then(
				() => broker,
				err => {
					// Forget a failed link so the next call tries again instead of failing forever.
					this.links.delete(regionId);
					throw err;
				}
			);
			this.links.set(regionId, link);
		}
		return link;
	}

	/** Calls `action` in `regionId`, waiting (bounded) for its service to be discovered on a new link. */
	async call<T = unknown>(regionId: string, action: string, params?: unknown, opts?: CallingOptions): Promise<T> {
		const link = await this.broker(regionId);
		const service = action.slice(0, action.lastIndexOf("."));
		if (!link.registry.getActionEndpoints(action)?.hasAvailable())
			await link.waitForServices(service, this.discoveryTimeoutMs, 20);
		return link.call(action, params, opts) as Promise<T>;
	}

	/** Region ids with a link started or starting. */
	open(): string[] {
		return [...this.links.keys()];
	}

	async stop(): Promise<void> {
		const links = [...this.links.values()];
		this.links.clear();
		await Promise.allSettled(links.map(async l => (await l).stop()));
	}
}

const linksByBroker = new WeakMap<ServiceBroker, RegionLinks>();

export function attachLinks(broker: ServiceBroker, links: RegionLinks): void {
	linksByBroker.set(broker, links);
}

export function linksOf(broker: ServiceBroker): RegionLinks {
	const links = linksByBroker.get(broker);
	if (!links) throw new Error(`broker ${broker.nodeID} has no region links`);
	return links;
}
