import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { createServer } from "node:http";
import { monitorEventLoopDelay } from "node:perf_hooks";
import type { MetricRegistry } from "moleculer";
import { MetricReporters } from "moleculer";
import { natsCertificateExpiry } from "./bus-credentials.ts";
import { busWatchOf } from "./bus-watch.ts";
import { declaredMetricsOf } from "./declared-metrics.ts";
import { globalProbeOf } from "./global-probe.ts";
import { readiness } from "./health.ts";
import type { MetricDefinition, MetricShape } from "./metric-names.ts";
import { METRIC, SAMPLED_METRICS, STORED_METRICS } from "./metric-names.ts";
import { bearerMatches } from "./ops-token.ts";
import type { HistogramSample, ValueSample } from "./prometheus-text.ts";
import { renderFamily } from "./prometheus-text.ts";

export interface OpsReporterOptions {
	host: string;
	port: number;
	/** Bearer token of /metrics and /readyz. */
	token: string;
	/** Labels on every sample (the node's region). */
	labels: Record<string, string>;
}

/**
 * The process's ops port: `/healthz` (liveness, open: it says only "ok", and container probes
 * carry no credentials), `/readyz` and `/metrics` (bearer token). It serves only the metrics of
 * regions/runtime/metric-names.ts, in Prometheus text format.
 */
export class OpsReporter extends MetricReporters.Base {
	private readonly ops: OpsReporterOptions;
	private server: Server | undefined;
	/** This port's own view of the event loop, reset at each of its scrapes. */
	private readonly eventLoop = monitorEventLoopDelay({ resolution: 20 });

	constructor(opts: OpsReporterOptions) {
		super({});
		this.ops = opts;
	}

	override init(registry: MetricRegistry): void {
		super.init(registry);
		this.eventLoop.enable();
		this.server = createServer((req, res) => this.handle(req, res));
		this.server.listen(this.ops.port, this.ops.host, () =>
			this.logger.info(`ops endpoint on http://${this.ops.host}:${this.ops.port} (/healthz open; /readyz, /metrics with the bearer token)`)
		);
		this.server.on("error", err => this.broker.fatal(`ops endpoint on ${this.ops.host}:${this.ops.port}: ${err.message}`, err));
	}

	override stop(): Promise<void> {
		this.eventLoop.disable();
		return new Promise(resolve => (this.server ? this.server.close(() => resolve()) : resolve()));
	}

	private handle(req: IncomingMessage, res: ServerResponse): void {
		const path = (req.url ?? "").split("?")[0];
		if (req.method !== "GET" && req.method !== "HEAD") {
			send(res, 405, { error: { code: "METHOD_NOT_ALLOWED", message: "GET only" } }, { Allow: "GET, HEAD" });
			return;
		}
		if (path === "/healthz") {
			send(res, 200, { status: "ok" });
			return;
		}
		if (path !== "/readyz" && path !== "/metrics") {
			send(res, 404, { error: { code: "NOT_FOUND", message: "no such path" } });
			return;
		}
		if (!bearerMatches(req.headers.authorization, this.ops.token)) {
			send(res, 401, { error: { code: "UNAUTHORIZED", message: "a bearer token is required" } }, { "WWW-Authenticate": 'Bearer realm="edgehome-ops"' });
			return;
		}
		if (path === "/metrics") {
			// Readiness is served too (edgehome_ready), so a scrape asks the stores as /readyz does.
			readiness(this.broker).then(
				r => this.sendMetrics(res, r.ready),
				() => this.sendMetrics(res, false)
			);
			return;
		}
		readiness(this.broker).then(
			// 200 while the node serves its own region's users, even with global operations unavailable.
			r => send(res, r.ready ? 200 : 503, { status: r.ready ? "ready" : "not-ready", ...r }),
			(err: Error) => {
				this.logger.warn(`readiness check failed: ${err.message}`);
				send(res, 503, { status: "not-ready", ready: false, serving: "none", checks: {} });
			}
		);
	}

	private sendMetrics(res: ServerResponse, ready: boolean): void {
		res.writeHead(200, { "Content-Type": "text/plain; version=0.0.4; charset=utf-8", "Cache-Control": "no-store" });
		res.end(this.exposition(ready));
	}

	/** Every metric of the catalogue, stored ones from the broker's registry, the others read now; then those services declared. */
	exposition(ready: boolean): string {
		const families = STORED_METRICS.map(def => renderFamily(def, this.stored(def), this.ops.labels));
		for (const def of declaredMetricsOf(this.broker)) families.push(renderFamily(def, this.stored(def), this.ops.labels));
		for (const def of SAMPLED_METRICS) {
			const value = this.sample(def, ready);
			families.push(renderFamily(def, value === undefined ? [] : [{ labels: {}, value }], this.ops.labels));
		}
		return families.join("");
	}

	private stored(def: MetricShape): ValueSample[] | HistogramSample[] {
		const metric = this.registry.getMetric(def.name);
		return (metric?.snapshot() ?? []) as unknown as ValueSample[] | HistogramSample[];
	}

	/** undefined: nothing to sample (no TLS handshake yet); the family is served without a sample. */
	private sample(def: MetricDefinition, ready: boolean): number | undefined {
		switch (def.name) {
			case METRIC.ready:
				return ready ? 1 : 0;
			case METRIC.natsCertificateExpiry:
				return natsCertificateExpiry();
			case METRIC.transporterConnected:
				return this.broker.transit?.connected !== false && busWatchOf(this.broker)?.connected !== false ? 1 : 0;
			case METRIC.globalOperationsAvailable:
				return globalProbeOf(this.broker)?.state.status === "available" ? 1 : 0;
			case METRIC.residentMemory:
				return process.memoryUsage.rss();
			case METRIC.cpuSeconds: {
				const { user, system } = process.cpuUsage();
				return (user + system) / 1e6;
			}
			case METRIC.startTime:
				return Math.round(Date.now() / 1000 - process.uptime());
			case METRIC.heapUsed:
				return process.memoryUsage().heapUsed;
			case METRIC.eventLoopDelay: {
				const p99 = this.eventLoop.percentile(99) / 1e9;
				this.eventLoop.reset();
				return p99;
			}
			default:
				throw new Error(`no sampler for ${def.name}`);
		}
	}
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
	res.writeHead(status, { "Content-Type": "application/json", "Cache-Control": "no-store", ...headers });
	res.end(JSON.stringify(body));
}
