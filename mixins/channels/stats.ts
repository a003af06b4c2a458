import type { ServiceBroker } from "moleculer";
import { METRIC } from "../../regions/runtime/metric-names.ts";

export interface ChannelCounts {
	channel: string;
	group: string;
	acknowledged: number;
	redelivered: number;
	deadLettered: number;
	inFlight: number;
}

/** What this node's consumers of one channel and group did; copied into the broker's metrics as it happens. */
export class ChannelStats {
	readonly counts: ChannelCounts;
	private readonly broker: ServiceBroker;
	private readonly labels: { channel: string; group: string };

	constructor(broker: ServiceBroker, channel: string, group: string) {
		this.broker = broker;
		this.labels = { channel, group };
		this.counts = { channel, group, acknowledged: 0, redelivered: 0, deadLettered: 0, inFlight: 0 };
		if (this.metered()) {
			for (const name of [METRIC.channelAcknowledged, METRIC.channelRedelivered, METRIC.channelDeadLettered]) broker.metrics.increment(name, this.labels, 0);
			broker.metrics.set(METRIC.channelPending, 0, this.labels);
		}
	}

	acknowledged(): void {
		this.counts.acknowledged++;
		if (this.metered()) this.broker.metrics.increment(METRIC.channelAcknowledged, this.labels);
	}
	redelivered(): void {
		this.counts.redelivered++;
		if (this.metered()) this.broker.metrics.increment(METRIC.channelRedelivered, this.labels);
	}
	deadLettered(): void {
		this.counts.deadLettered++;
		if (this.metered()) this.broker.metrics.increment(METRIC.channelDeadLettered, this.labels);
	}
	pending(count: number): void {
		if (this.metered()) this.broker.metrics.set(METRIC.channelPending, count, this.labels);
	}

	private metered(): boolean {
		return this.broker.isMetricsEnabled();
	}
}
