import type { Middleware, Packet, ServiceBroker } from "moleculer";

/**
 * Drops a remote node from this broker's registry once it has been silent for the heartbeat
 * timeout. Moleculer alone checks only every `heartbeatTimeout` seconds, against whole-second
 * stamps (registry/discoverers/base.js), so a node killed without a DISCONNECT packet kept its
 * endpoints, and the Shard strategy kept its users on it, for up to twice the timeout. Here every
 * packet a node sends counts as a sign of life and silence is judged four times per interval:
 * the node goes at most a quarter interval after the timeout. `nodes.disconnected` also rejects
 * the calls waiting on it with REQUEST_REJECTED, which the retry policy sends to a live node.
 * Used by a node's own broker and by every link broker (each is a member of the region it calls).
 */
export function NodeLiveness(): Middleware {
	const lastSeen = new Map<string, number>();
	let timer: NodeJS.Timeout | undefined;
	return {
		name: "NodeLiveness",

		transitMessageHandler(next: (cmd: string, packet: Packet.Packet<Packet.PacketPayload>) => Promise<void>) {
			return (cmd: string, packet: Packet.Packet<Packet.PacketPayload>) => {
				const sender = packet.payload?.sender;
				if (sender) lastSeen.set(sender, performance.now());
				return next(cmd, packet);
			};
		},

		started(broker: ServiceBroker) {
			const intervalMs = (broker.options.heartbeatInterval ?? 0) * 1000;
			// No heartbeats, no judging silence.
			if (intervalMs <= 0) return;
			const timeoutMs = broker.options.heartbeatTimeout! * 1000;
			let lastTick = performance.now();
			timer = setInterval(() => {
				const now = performance.now();
				// A tick this late means this process stalled: packets that came meanwhile are unread yet.
				const stalled = now - lastTick > intervalMs;
				lastTick = now;
				if (stalled) return;
				for (const node of broker.registry.nodes.toArray()) {
					if (node.local) continue;
					// Forgotten while away: a returning node is available only after its INFO packet, recorded again.
					if (!node.available) {
						lastSeen.delete(node.id);
						continue;
					}
					const seen = lastSeen.get(node.id);
					if (seen !== undefined && now - seen > timeoutMs) {
						broker.logger.warn(`Node '${node.id}' silent for ${Math.round(now - seen)} ms (heartbeat timeout ${timeoutMs} ms): dropped.`);
						broker.registry.nodes.disconnected(node.id, true);
					}
				}
			}, intervalMs / 4);
			timer.unref();
		},

		stopped() {
			clearInterval(timer);
		}
	} as unknown as Middleware;
}
