import type { Context, ServiceSchema } from "moleculer";
import { MAX_KEY_LENGTH, MAX_NAME_LENGTH, MAX_PAYLOAD_BYTES } from "./names.ts";
import { channelsOf } from "./runtime.ts";
import { MAX_DEAD_LETTER_PAGE } from "./store.ts";

const channel = { type: "string", min: 1, max: MAX_NAME_LENGTH };
const id = { type: "string", min: 1, max: 64 };

export interface ChannelRow {
	channel: string;
	group: string;
	pending: number | null;
	/** This node's counts, when it runs a consumer of the group. */
	node?: { acknowledged: number; redelivered: number; deadLettered: number; inFlight: number };
}

/**
 * `$channels` on every node with channels: the target of other regions' forwarders (`accept`)
 * and what the REPL's `channels …` commands call. Every action takes the `channels` capability
 * (regions/runtime/restricted-calls.ts): `accept` stores a message for any channel, the dead letters
 * hold payloads (personal data), `replay` delivers again and `list` maps the region's traffic.
 */
export const CHANNELS_SERVICE: ServiceSchema = {
	name: "$channels",
	actions: {
		accept: {
			restricted: "channels",
			visibility: "public",
			params: {
				$$strict: true,
				channel,
				id,
				key: { type: "string", min: 1, max: MAX_KEY_LENGTH, optional: true },
				headers: { type: "record", key: { type: "string" }, value: { type: "string" } },
				// Characters, not bytes: the byte limit is checked after.
				payload: { type: "string", max: MAX_PAYLOAD_BYTES }
			},
			handler(ctx: Context<{ channel: string; id: string; key?: string; headers: Record<string, string>; payload: string }>) {
				return channelsOf(this.broker).accept(ctx.params);
			}
		},
		list: {
			restricted: "channels",
			params: { $$strict: true },
			async handler(): Promise<{ nodeID: string; store: string; channels: ChannelRow[] }> {
				const runtime = channelsOf(this.broker);
				const rows: ChannelRow[] = [];
				for (const info of await runtime.store.channels()) {
					for (const group of info.groups) {
						const counts = runtime.stats.find(s => s.counts.channel === info.channel && s.counts.group === group)?.counts;
						const pending = await runtime.store.pending(info.channel, group).catch(() => null);
						const { channel: _c, group: _g, ...node } = counts ?? { channel: "", group: "" };
						rows.push({ channel: info.channel, group, pending, ...(counts ? { node: node as ChannelRow["node"] } : {}) });
					}
				}
				return { nodeID: this.broker.nodeID, store: runtime.store.kind, channels: rows };
			}
		},
		deadLetters: {
			restricted: "channels",
			params: { $$strict: true, channel, limit: { type: "number", integer: true, min: 1, max: MAX_DEAD_LETTER_PAGE, default: 20 } },
			handler(ctx: Context<{ channel: string; limit: number }>) {
				return channelsOf(this.broker).store.deadLetters(ctx.params.channel, ctx.params.limit);
			}
		},
		replay: {
			restricted: "channels",
			params: { $$strict: true, channel, id },
			handler(ctx: Context<{ channel: string; id: string }>) {
				return channelsOf(this.broker).store.replay(ctx.params.channel, ctx.params.id);
			}
		}
	}
};
