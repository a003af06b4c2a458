import type { BrokerOptions, CallingOptions } from "moleculer";
import { ServiceBroker } from "moleculer";
import { NodeLiveness } from "./node-liveness.ts";

/**
 * Links from this node to other regions. Moleculer has no cross-namespace call, so a link is a
 * service-less broker joined to the other region's namespace over the same transport (the NATS
 * supercluster, or the in-process bus when embedded); it discovers that region's services like
 * any of its nodes would. Each link is created on first use, once.
 */
export class RegionLinks {
	private readonly links = new Map<string, { broker: ServiceBroker; started: Promise<ServiceBroker> }>();
	private readonly optionsFor: (regionId: string) => BrokerOptions;
	private readonly discoveryTimeoutMs: number;
	private readonly startTimeoutMs: number;

	constructor(optionsFor: (regionId: string) => BrokerOptions, discoveryTimeoutMs = 2000, startTimeoutMs = 5000) {
		this.optionsFor = optionsFor;
		this.discoveryTimeoutMs = discoveryTimeoutMs;
		this.startTimeoutMs = startTimeoutMs;
	}

	/** The started link broker for `regionId`; rejects (and forgets the link) if it cannot start in time. */
	broker(regionId: string): Promise<ServiceBroker> {
		const existing = this.links.get(regionId);
		if (existing) return existing.started;
		const options = this.optionsFor(regionId);
		// A link is a member of the region's namespace: it must drop that region's dead nodes as fast as they do.
		// It runs nothing to trace: a call through it carries its caller's span as its parent (`parentSpan`).
		const broker = new ServiceBroker({ ...options, tracing: { enabled: false }, middlewares: [...(options.middlewares ?? []), NodeLiveness()] });
		let timer: NodeJS.Timeout | undefined;
		// Moleculer retries a connection forever; a link that cannot connect must not hang its callers.
		const timeout = new Promise<never>((_, reject) => {
			timer = setTimeout(() => reject(new Error(`link to ${regionId} did not connect within ${this.startTimeoutMs} ms`)), this.startTimeoutMs);
		});
		const started = Promise.race([broker.start().then(() => broker), timeout]).then(
			b => {
				clearTimeout(timer);
				return b;
			},
			async err => {
				clearTimeout(timer);
				// Forget a failed link so the next call tries again instead of failing forever.
				if (this.links.get(regionId)?.broker === broker) this.links.delete(regionId);
				await broker.stop().catch(() => undefined);
				throw err;
			}
		);
		this.links.set(regionId, { broker, started });
		return started;
	}

	/** Calls `action` in `regionId`, waiting (bounded) for its service to be discovered on a new link. */
	async call<T = unknown>(regionId: string, action: string, params?: unknown, opts?: CallingOptions): Promise<T> {
		const link = await this.broker(regionId);
		const service = action.slice(0, action.lastIndexOf("."));
		if (!link.registry.getActionEndpoints(action)?.hasAvailable()) await link.waitForServices(service, this.discoveryTimeoutMs, 20);
		return link.call(action, params, opts) as Promise<T>;
	}

	/** The registries of every link started or starting: what this node has heard of other regions' services. */
	registries(): ServiceBroker["registry"][] {
		return [...this.links.values()].map(l => l.broker.registry);
	}

	/** Region ids with a link started or starting. */
	open(): string[] {
		return [...this.links.keys()];
	}

	/** Stops every link, also one still trying to connect. */
	async stop(): Promise<void> {
		const links = [...this.links.values()];
		this.links.clear();
		await Promise.allSettled(links.map(l => l.broker.stop()));
	}
}
