import type { ServiceBroker } from "moleculer";
import { linksOf } from "../links.ts";
import type { ReplContext } from "./index.ts";

export interface Subcommand {
	usage: string;
	run(broker: ServiceBroker, args: string[]): Promise<void>;
}

/** `region …` sub-commands, by name. */
export function regionSubcommands({ regions, print }: ReplContext): Record<string, Subcommand> {
	return {
		list: {
			usage: "region list",
			async run(broker) {
				for (const r of regions) {
					const here = broker.namespace.endsWith(r.id) ? " (this REPL)" : "";
					print(`${r.id.padEnd(12)} ${r.name.padEnd(22)} countries=${r.countries.length} pinned=${r.residency.length} app=${r.ports.app} metrics=${r.ports.metrics}${here}`);
				}
			}
		},
		nodes: {
			usage: "region nodes <regionId>",
			async run(broker, [id]) {
				const region = regions.find(r => r.id === id);
				if (!region) return print(`unknown region "${id ?? ""}"; known: ${regions.map(r => r.id).join(", ")}`);
				const registry = broker.namespace.endsWith(region.id) ? broker.registry : (await linksOf(broker).broker(region.id)).registry;
				// A new link needs a moment to hear the region's nodes announce themselves.
				if (registry !== broker.registry) await new Promise(r => setTimeout(r, 1000));
				const nodes = registry.getNodeList({ onlyAvailable: true, withServices: true }).filter(n => !n.local && n.metadata?.region === region.id);
				if (!nodes.length) return print(`${region.id}: no node is reachable`);
				for (const n of nodes)
					print(`${region.id} ${n.id.padEnd(36)} services=${(n.services ?? []).map(s => String(s.name)).filter(s => !s.startsWith("$")).join(",")}`);
			}
		}
	};
}
