import type { ServiceBroker } from "moleculer";
import { declareMetric } from "../../regions/runtime/declared-metrics.ts";

/** One business metric a service declares: its Prometheus name, kind, help and label names. */
export interface BusinessMetric {
	name: `edgehome_${string}`;
	type: "counter" | "gauge" | "histogram";
	help: string;
	labelNames?: readonly string[];
	/** Histograms: upper bounds of the buckets, in the metric's unit. */
	buckets?: readonly number[];
}

type LabelsOf<M extends BusinessMetric> = M["labelNames"] extends readonly (infer L extends string)[] ? { [K in L]: string } : Record<string, never>;
type KeysOfType<D extends Record<string, BusinessMetric>, T extends BusinessMetric["type"]> = { [K in keyof D]: D[K]["type"] extends T ? K : never }[keyof D];

/**
 * A service's business metrics, typed by their declaration: a counter is only incremented, a
 * gauge only set, a histogram only observed, each with exactly its declared labels. They are
 * served by the ops port after the runtime's (regions/runtime/declared-metrics.ts). On a node whose
 * metrics are off every call does nothing.
 */
export class BusinessMetrics<D extends Record<string, BusinessMetric>> {
	private readonly broker: ServiceBroker;
	private readonly declared: D;
	private readonly on: boolean;

	constructor(broker: ServiceBroker, declared: D) {
		this.broker = broker;
		this.declared = declared;
		this.on = broker.isMetricsEnabled();
		if (!this.on) return;
		for (const m of Object.values(declared))
			declareMetric(broker, { name: m.name, type: m.type, help: m.help, labelNames: [...(m.labelNames ?? [])], buckets: m.buckets && [...m.buckets] });
	}

	increment<K extends KeysOfType<D, "counter">>(metric: K, labels: LabelsOf<D[K]>, by = 1): void {
		if (this.on) this.broker.metrics.increment(this.declared[metric]!.name, labels, by);
	}

	set<K extends KeysOfType<D, "gauge">>(metric: K, labels: LabelsOf<D[K]>, value: number): void {
		if (this.on) this.broker.metrics.set(this.declared[metric]!.name, value, labels);
	}

	observe<K extends KeysOfType<D, "histogram">>(metric: K, labels: LabelsOf<D[K]>, value: number): void {
		if (this.on) this.broker.metrics.observe(this.declared[metric]!.name, value, labels);
	}
}

/** Declares a service's metrics once, keeping each one's literal type (its labels) for `BusinessMetrics`. */
export function declareMetrics<const D extends Record<string, BusinessMetric>>(declared: D): D {
	return declared;
}
