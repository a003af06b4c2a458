import type { MetricShape } from "./metric-names.ts";

type Labels = Record<string, string | number>;

export interface ValueSample {
	labels: Labels;
	value: number;
}

export interface HistogramSample {
	labels: Labels;
	count: number;
	sum: number;
	/** Cumulative counts by upper bound. */
	buckets: Record<string, number>;
}

/** Prometheus text format 0.0.4, written here so every family has its help, its type and real buckets. */
export function renderFamily(def: MetricShape, samples: ValueSample[] | HistogramSample[], common: Labels): string {
	const lines = [`# HELP ${def.name} ${escapeHelp(def.help)}`, `# TYPE ${def.name} ${def.type}`];
	if (def.type === "histogram") {
		for (const s of samples as HistogramSample[]) {
			for (const le of def.buckets ?? [])
				lines.push(`${def.name}_bucket${labelText({ ...common, ...s.labels, le: String(le) })} ${number(s.buckets[le] ?? 0)}`);
			lines.push(`${def.name}_bucket${labelText({ ...common, ...s.labels, le: "+Inf" })} ${number(s.count)}`);
			lines.push(`${def.name}_sum${labelText({ ...common, ...s.labels })} ${number(s.sum)}`);
			lines.push(`${def.name}_count${labelText({ ...common, ...s.labels })} ${number(s.count)}`);
		}
	} else {
		for (const s of samples as ValueSample[]) lines.push(`${def.name}${labelText({ ...common, ...s.labels })} ${number(s.value)}`);
	}
	return `${lines.join("\n")}\n`;
}

function labelText(labels: Labels): string {
	const parts = Object.entries(labels).map(([k, v]) => `${k}="${String(v).replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"')}"`);
	return parts.length ? `{${parts.join(",")}}` : "";
}

function escapeHelp(help: string): string {
	return help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function number(n: number): string {
	return Number.isFinite(n) ? String(n) : Number.isNaN(n) ? "NaN" : n > 0 ? "+Inf" : "-Inf";
}
