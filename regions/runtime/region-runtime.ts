import type { CallingOptions, ServiceBroker } from "moleculer";
import type { HomeDirectory } from "../directory/home-directory.ts";
import type { RoutingStats } from "../home-router.ts";
import type { RegionLinks } from "../links.ts";
import type { WriteFence } from "../ownership/fence.ts";
import type { OwnershipRecords } from "../ownership/records.ts";
import type { RegionDefinition } from "../region.ts";
import type { RegionHealth } from "../region-health.ts";
import type { RegionStores } from "../stores/index.ts";

/** What a broker holds of its region. A region node holds all; a console or a test broker only what it uses. */
export interface RegionParts {
	region: RegionDefinition;
	regions: RegionDefinition[];
	links: RegionLinks;
	stores: RegionStores;
	directory: HomeDirectory;
	health: RegionHealth;
	routing: RoutingStats;
	/** This region's ownership rows, which a move's handover steps change. */
	ownership: OwnershipRecords;
	/** Where home-routed writes commit (regions/ownership/fence.ts). */
	fence: WriteFence;
	/** The services a move copies, as the deployment declares them (regions/move-participants.ts). */
	moveParticipants: () => Promise<string[]>;
}

/**
 * A broker's handle on its region: the one seam between what runs on a broker and the region
 * runtime. `call` and `registry` take a region and reach this region's own bus for it and a link
 * for any other, so nothing else chooses between the two.
 */
export class RegionRuntime {
	readonly broker: ServiceBroker;
	private readonly parts: Partial<RegionParts>;

	constructor(broker: ServiceBroker, parts: Partial<RegionParts>) {
		this.broker = broker;
		this.parts = parts;
	}

	get region(): RegionDefinition {
		return this.part("region");
	}
	get regions(): RegionDefinition[] {
		return this.part("regions");
	}
	get links(): RegionLinks {
		return this.part("links");
	}
	get stores(): RegionStores {
		return this.part("stores");
	}
	get directory(): HomeDirectory {
		return this.part("directory");
	}
	get health(): RegionHealth {
		return this.part("health");
	}
	get routing(): RoutingStats {
		return this.part("routing");
	}
	get ownership(): OwnershipRecords {
		return this.part("ownership");
	}
	get fence(): WriteFence {
		return this.part("fence");
	}
	get moveParticipants(): () => Promise<string[]> {
		return this.part("moveParticipants");
	}

	has(part: keyof RegionParts): boolean {
		return this.parts[part] !== undefined;
	}

	/** Calls `action` in `region`: on this broker for its own region, through the link otherwise. */
	call<T = unknown>(region: string, action: string, params?: unknown, opts?: CallingOptions): Promise<T> {
		if (region === this.region.id) return this.broker.call<T, unknown>(action, params, opts);
		return this.links.call<T>(region, action, params, opts);
	}

	/** The broker that sees `region`'s bus: this one, or the started link. */
	async bus(region: string): Promise<ServiceBroker> {
		return region === this.region.id ? this.broker : this.links.broker(region);
	}

	/** What is known of `region`'s nodes and services. */
	async registry(region: string): Promise<ServiceBroker["registry"]> {
		return (await this.bus(region)).registry;
	}

	private part<K extends keyof RegionParts>(name: K): RegionParts[K] {
		const value = this.parts[name];
		if (value === undefined) throw new Error(`broker ${this.broker.nodeID} has no region ${name} (not a region node)`);
		return value as RegionParts[K];
	}
}

const runtimes = new WeakMap<ServiceBroker, RegionRuntime>();

/** Gives `broker` its region handle; call before the broker starts its services. */
export function attachRegionRuntime(broker: ServiceBroker, parts: Partial<RegionParts>): RegionRuntime {
	const runtime = new RegionRuntime(broker, parts);
	runtimes.set(broker, runtime);
	return runtime;
}

export function regionRuntimeOf(broker: ServiceBroker): RegionRuntime {
	const runtime = runtimes.get(broker);
	if (!runtime) throw new Error(`broker ${broker.nodeID} runs outside a region (no region runtime attached)`);
	return runtime;
}

/** The handle, for what also runs on brokers without one (the ops endpoint). */
export function findRegionRuntime(broker: ServiceBroker): RegionRuntime | undefined {
	return runtimes.get(broker);
}
