import type { Middleware, ServiceBroker } from "moleculer";
import { middlewarePart } from "./middleware-part.ts";

interface NatsStatus {
	type: string;
	data?: unknown;
}

interface NatsClientLike {
	status(): AsyncIterable<NatsStatus>;
}

const MIDDLEWARE_NAME = "BusWatch";

/** The watch of a broker configured by broker.config.ts; none on other brokers (tests, links). */
export function busWatchOf(broker: ServiceBroker): BusWatch | undefined {
	return middlewarePart(broker, MIDDLEWARE_NAME, "watch");
}

/**
 * Whether this node's connection to its region's bus is up. Moleculer's own flag stays true while
 * the NATS client reconnects (for as long as it takes), so readiness listens to the client itself:
 * a dropped connection is seen at once, a silent one by the client's pings.
 */
export class BusWatch {
	private up = true;

	get connected(): boolean {
		return this.up;
	}

	/** The broker middleware that follows the transporter's client and logs its drops and returns. */
	middleware(): Middleware {
		return {
			name: MIDDLEWARE_NAME,
			watch: this,
			started: (broker: ServiceBroker) => this.follow(broker)
		} as unknown as Middleware;
	}

	private follow(broker: ServiceBroker): void {
		const client = (broker.transit?.tx as { client?: NatsClientLike } | undefined)?.client;
		if (!client || typeof client.status !== "function") return;
		this.up = true;
		void (async () => {
			for await (const s of client.status()) {
				if (s.type === "disconnect") {
					broker.logger.warn(`bus connection lost (${String(s.data ?? "")}): not ready until it is back`);
					this.up = false;
				} else if (s.type === "reconnect") {
					broker.logger.info(`bus connection back (${String(s.data ?? "")})`);
					this.up = true;
				}
			}
		})().catch(err => broker.logger.warn(`bus watch stopped: ${(err as Error).message}`));
	}
}
