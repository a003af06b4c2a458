import type { IncomingMessage, ServerResponse } from "node:http";
import { MetricReporters } from "moleculer";
import { readiness } from "./health.ts";

/**
 * Moleculer's Prometheus reporter, whose HTTP server also answers the process's
 * liveness (`/healthz`) and readiness (`/readyz`) probes: one ops port per process.
 */
export class OpsReporter extends MetricReporters.Prometheus {
	override handler(req: IncomingMessage, res: ServerResponse): void {
		const path = (req.url ?? "").split("?")[0];
		if (path === "/healthz") return send(res, 200, { status: "ok", nodeID: this.broker.nodeID });
		if (path === "/readyz") {
			readiness(this.broker).then(
				r => send(res, r.ready ? 200 : 503, { status: r.ready ? "ready" : "not-ready", ...r }),
				(err: Error) => send(res, 503, { status: "not-ready", error: err.message })
			);
			return;
		}
		super.handler(req, res);
	}
}

function send(res: ServerResponse, status: number, body: unknown): void {
	res.writeHead(status, { "Content-Type": "application/json", "Cache-Control": "no-store" });
	res.end(JSON.stringify(body));
}
