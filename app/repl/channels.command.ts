import type { ReplContext } from "./context.ts";
import type { Subcommand } from "./region.command.ts";

interface ChannelRow {
	channel: string;
	group: string;
	pending: number | null;
	node?: { acknowledged: number; redelivered: number; deadLettered: number; inFlight: number };
}

interface DeadLetterRow {
	id: string;
	group: string;
	error: string;
	errorType?: string;
	attempts: number;
	at: number;
}

/**
 * `channels …` sub-commands, by name: the durable channels of the REPL's region (mixins/channels/ops.service.ts).
 * `$channels` takes the `channels` capability: a REPL holding its key (EDGEHOME_CAPABILITY_KEYS) signs these calls.
 */
export function channelsSubcommands({ print }: ReplContext): Record<string, Subcommand> {
	return {
		list: {
			usage: "channels list",
			async run(broker) {
				const nodes = broker.registry.getActionEndpoints("$channels.list")?.endpoints ?? [];
				if (!nodes.length) return print("no node of this region runs channels");
				const answers = await Promise.all(
					nodes.map(ep => broker.call<{ store: string; channels: ChannelRow[] }, unknown>("$channels.list", {}, { nodeID: ep.id }))
				);
				// Pending is the store's (the same from every node); the counts are each node's, summed.
				for (const row of answers[0]!.channels) {
					const counts = answers.map(a => a.channels.find(r => r.channel === row.channel && r.group === row.group)?.node).filter(c => c !== undefined);
					const sum = (k: keyof NonNullable<ChannelRow["node"]>) => counts.reduce((total, c) => total + c[k], 0);
					print(
						`${row.channel.padEnd(28)} ${row.group.padEnd(16)} pending=${row.pending ?? "?"} acked=${sum("acknowledged")} redelivered=${sum("redelivered")} dead=${sum("deadLettered")} consumers=${counts.length}`
					);
				}
				print(`(${answers[0]!.store} store; counts since each of ${nodes.length} node(s) started)`);
			}
		},
		dlq: {
			usage: "channels dlq <name>",
			async run(broker, [channel]) {
				if (!channel) return print("usage: channels dlq <name>");
				const dead = await broker.call<DeadLetterRow[], unknown>("$channels.deadLetters", { channel, limit: 20 });
				if (!dead.length) return print(`${channel}: no dead letters`);
				for (const d of dead)
					print(`${d.id} group=${d.group} attempts=${d.attempts} at=${new Date(d.at).toISOString()} error=${d.errorType ? `${d.errorType}: ` : ""}${d.error}`);
			}
		},
		replay: {
			usage: "channels replay <name> <id>",
			async run(broker, [channel, id]) {
				if (!channel || !id) return print("usage: channels replay <name> <id>");
				const replayed = await broker.call<{ id: string; group: string }, unknown>("$channels.replay", { channel, id });
				print(`replayed ${id} to group ${replayed.group} as ${replayed.id}`);
			}
		}
	};
}
