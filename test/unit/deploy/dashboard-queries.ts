import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { METRIC } from "../../../regions/runtime/metric-names.ts";
import { DEPLOY } from "./stack-checks.ts";

export const GRAFANA = join(DEPLOY, "grafana");
export const PROMETHEUS = join(DEPLOY, "prometheus");

/**
 * The prometheus-nats-exporter metrics the NATS dashboard reads, as the exporter names them:
 * `gnatsd_varz_<numeric field of /varz>` (-varz) and the `jetstream_server_`, `_stream_` and
 * `_consumer_` gauges of -jsz=all. Only a running exporter serves them.
 */
export const EXPORTER_METRICS = [
	"gnatsd_varz_connections",
	"gnatsd_varz_in_msgs",
	"gnatsd_varz_out_msgs",
	"gnatsd_varz_slow_consumers",
	"gnatsd_varz_leafnodes",
	"gnatsd_varz_routes",
	"gnatsd_varz_mem",
	"jetstream_server_total_messages",
	"jetstream_server_total_message_bytes",
	"jetstream_server_max_storage",
	"jetstream_stream_last_seq",
	"jetstream_consumer_num_pending",
	"jetstream_consumer_num_ack_pending",
	"jetstream_consumer_num_redelivered"
];

/** Metrics no embedded cluster serves: the exporter's, and the NATS certificate (the in-process bus has no TLS). */
const NEEDS_NATS = new Set<string>([...EXPORTER_METRICS, METRIC.natsCertificateExpiry]);

/** Every name a query may use: what the ops ports serve, Prometheus's own `up`, the exporter's. */
export const KNOWN_METRICS = new Set<string>([...Object.values(METRIC), "up", ...EXPORTER_METRICS]);

export interface DashboardQuery {
	dashboard: string;
	/** The panel's title, or `variable <name>`. */
	panel: string;
	/** As written in the dashboard, Grafana variables and all. */
	expr: string;
}

export interface Dashboard {
	file: string;
	json: {
		uid: string;
		title: string;
		panels: Panel[];
		templating: { list: { name: string; datasource?: { uid: string }; query: { query: string } }[] };
	};
}

export interface Panel {
	id: number;
	type: string;
	title: string;
	gridPos: { x: number; y: number; w: number; h: number };
	datasource?: { type: string; uid: string };
	targets?: { refId: string; expr: string; datasource?: { uid: string } }[];
}

export function readDashboards(): Dashboard[] {
	const dir = join(GRAFANA, "dashboards");
	return readdirSync(dir)
		.filter(f => f.endsWith(".json"))
		.sort()
		.map(file => ({ file, json: JSON.parse(readFileSync(join(dir, file), "utf8")) }));
}

/** Each panel target's expression, and each template variable's metric (`label_values(<metric>, <label>)`). */
export function dashboardQueries(dashboards = readDashboards()): DashboardQuery[] {
	return dashboards.flatMap(({ json }) => [
		...json.templating.list.map(v => ({
			dashboard: json.uid,
			panel: `variable ${v.name}`,
			expr: v.query.query.replace(/^label_values\((.+),\s*\w+\)$/, "$1")
		})),
		...json.panels.flatMap(p => (p.targets ?? []).map(t => ({ dashboard: json.uid, panel: p.title, expr: t.expr })))
	]);
}

/**
 * The query as Grafana sends it with every region selected: `$region` is the variable's "All"
 * value, `$__rate_interval` a window of a few scrapes.
 */
export function asPromQL(expr: string, rateInterval = "1m"): string {
	return expr.replaceAll("$__rate_interval", rateInterval).replaceAll("$region", ".*");
}

/** The metric names a query reads (a histogram's series by their family's name). */
export function metricNames(expr: string): string[] {
	const names = [...expr.matchAll(/\b(?:edgehome|process|nodejs|gnatsd|jetstream)_[a-z0-9_]+|\bup(?=\{)/g)].map(m => m[0]);
	return [
		...new Set(
			names.map(n => {
				const family = n.replace(/_(?:bucket|sum|count)$/, "");
				return family !== n && KNOWN_METRICS.has(family) ? family : n;
			})
		)
	];
}

/** Whether only a real NATS server (through the exporter, or over TLS) gives the query a series. */
export function needsNats(expr: string): boolean {
	return metricNames(expr).some(n => NEEDS_NATS.has(n));
}
