import type { ServiceBroker } from "moleculer";
import type { MetricShape } from "./metric-names.ts";
import { registerMetric } from "./ops-metrics.ts";

/** A metric a service declared (mixins/metrics.mixin.ts), served by the ops port after the catalogue's. */
export interface DeclaredMetric extends MetricShape {
	name: `edgehome_${string}`;
}

const declared = new WeakMap<ServiceBroker, Map<string, DeclaredMetric>>();

/**
 * Registers `metric` on the broker's registry once and lists it for the ops port. The catalogue
 * (metric-names.ts) holds what the runtime measures; a service's own figures are declared by the
 * service, and only those so declared are served beside it.
 */
export function declareMetric(broker: ServiceBroker, metric: DeclaredMetric): void {
	let list = declared.get(broker);
	if (!list) declared.set(broker, (list = new Map()));
	if (list.has(metric.name)) return;
	list.set(metric.name, metric);
	if (!broker.metrics.getMetric(metric.name)) registerMetric(broker.metrics, metric);
}

export function declaredMetricsOf(broker: ServiceBroker): DeclaredMetric[] {
	return [...(declared.get(broker)?.values() ?? [])];
}
