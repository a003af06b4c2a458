import type { ServiceBroker } from "moleculer";
import { regionRuntimeOf } from "../../regions/runtime/region-runtime.ts";
import type { ReplContext } from "./context.ts";
import { USER_ARGUMENT, userIdOf } from "./user-argument.ts";

export interface Subcommand {
	usage: string;
	run(broker: ServiceBroker, args: string[]): Promise<void>;
}

interface RegionStatusAnswer {
	region: string;
	node: string;
	serving: string;
	global: { status: string; since?: number };
	bus: string;
	regions: Record<string, { status: string; since: number; reason?: string }>;
}

const pct = (n: number) => `${(n * 100).toFixed(1)}%`;

/** `region …` sub-commands, by name. */
export function regionSubcommands({ regions, print }: ReplContext): Record<string, Subcommand> {
	return {
		which: {
			usage: `region which ${USER_ARGUMENT}`,
			async run(broker, [arg]) {
				if (!arg) return print(`usage: region which ${USER_ARGUMENT}`);
				const userId = await userIdOf(broker, arg);
				const home = await broker.call<{ region: string; epoch: number; state: string; pinned: boolean }, unknown>("sv-region.lookup", { userId });
				print(`${userId} home=${home.region} epoch=${home.epoch} state=${home.state}${home.pinned ? " pinned" : ""}`);
			}
		},
		status: {
			usage: "region status",
			async run(broker) {
				const res = await broker.call<RegionStatusAnswer, unknown>("sv-region.status", {});
				const since = (ms?: number) => (ms === undefined ? "" : ` since ${new Date(ms).toISOString()}`);
				// One line per fact of the answering node, then one per region as its region-health sees it.
				print(`${"region".padEnd(18)} ${res.region} (node ${res.node})`);
				print(`${"serving".padEnd(18)} ${res.serving}`);
				print(`${"global operations".padEnd(18)} ${res.global.status}${since(res.global.since)}`);
				print(`${"bus".padEnd(18)} ${res.bus}`);
				for (const [id, s] of Object.entries(res.regions))
					print(
						`${id.padEnd(12)} ${s.status.padEnd(8)}${since(s.since)}${s.reason ? ` (${s.reason})` : ""}${id === res.region ? " (answering node's region)" : ""}`
					);
			}
		},
		move: {
			usage: "region move <userId> <regionId>",
			async run(broker, [userId, to]) {
				if (!userId || !to) return print("usage: region move <userId> <regionId>");
				print(`moving ${userId} to ${to} …`);
				const res = await broker.call<{ from: string; to: string; epoch: number; moveId: string }, unknown>(
					"sv-region.move",
					{ userId, to },
					{ timeout: 120_000 }
				);
				print(`moved ${userId} from ${res.from} to ${res.to}, epoch ${res.epoch} (move ${res.moveId})`);
			}
		},
		stats: {
			usage: "region stats",
			async run(broker) {
				const census = await broker.call<{ users: Record<string, number>; total: number; complete: boolean }, unknown>(
					"sv-region.census",
					{},
					{ timeout: 120_000 }
				);
				print(
					`users: ${Object.entries(census.users)
						.map(([r, n]) => `${r}=${n}`)
						.join(" ")} total=${census.total}${census.complete ? "" : "+"}`
				);
				const endpoints = broker.registry.getActionEndpoints("sv-region.stats")?.endpoints ?? [];
				for (const ep of endpoints) {
					const s = await broker.call<
						{
							nodeID: string;
							lookups: number;
							cache: { size: number; hitRate: number };
							routing: { local: number; forwards: Record<string, number>; heals: number };
						},
						unknown
					>("sv-region.stats", {}, { nodeID: ep.id });
					const forwards =
						Object.entries(s.routing.forwards)
							.map(([r, n]) => `${r}=${n}`)
							.join(" ") || "none";
					print(
						`${s.nodeID.padEnd(30)} lookups=${s.lookups} cache=${s.cache.size} hit=${pct(s.cache.hitRate)} local=${s.routing.local} forwards: ${forwards} heals=${s.routing.heals}`
					);
				}
			}
		},
		list: {
			usage: "region list",
			async run(broker) {
				for (const r of regions) {
					const here = broker.namespace.endsWith(r.id) ? " (this REPL)" : "";
					print(
						`${r.id.padEnd(12)} ${r.name.padEnd(22)} countries=${r.countries.length} pinned=${r.residency.length} app=${r.ports.app} metrics=${r.ports.metrics}${here}`
					);
				}
			}
		},
		nodes: {
			usage: "region nodes <regionId>",
			async run(broker, [id]) {
				const region = regions.find(r => r.id === id);
				if (!region) return print(`unknown region "${id ?? ""}"; known: ${regions.map(r => r.id).join(", ")}`);
				const registry = await regionRuntimeOf(broker).registry(region.id);
				// A new link needs a moment to hear the region's nodes announce themselves.
				if (registry !== broker.registry) await new Promise(r => setTimeout(r, 1000));
				const nodes = registry.getNodeList({ onlyAvailable: true, withServices: true }).filter(n => !n.local && n.metadata?.region === region.id);
				if (!nodes.length) return print(`${region.id}: no node is reachable`);
				for (const n of nodes)
					print(
						`${region.id} ${n.id.padEnd(36)} services=${(n.services ?? [])
							.map(s => String(s.name))
							.filter(s => !s.startsWith("$"))
							.sort()
							.join(",")}`
					);
			}
		}
	};
}
