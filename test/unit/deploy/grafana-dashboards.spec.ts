import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parse as parseYaml, stringify as toYaml } from "yaml";
import { METRIC } from "../../../regions/runtime/metric-names.ts";
import { asPromQL, dashboardQueries, EXPORTER_METRICS, GRAFANA, KNOWN_METRICS, metricNames, readDashboards } from "./dashboard-queries.ts";

/**
 * deploy/grafana: the dashboards and the provisioning that loads them, checked without a Grafana:
 * every panel reads the provisioned datasource, fits the grid, and queries PromQL that promtool
 * parses, over metrics that exist. test/integration/deploy/prometheus-scrape.spec.ts runs the same
 * queries against a real Prometheus scraping `npm start`.
 */
const dashboards = readDashboards();
const queries = dashboardQueries(dashboards);
const provisioned = <T>(path: string) => parseYaml(readFileSync(join(GRAFANA, "provisioning", path), "utf8")) as T;
const scratch = mkdtempSync(join(tmpdir(), "edgehome-dashboards-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe("Grafana provisioning", () => {
	it("provisions one Prometheus datasource, by a fixed uid the dashboards name", () => {
		const { datasources } = provisioned<{ datasources: { uid: string; type: string; url: string }[] }>("datasources/edgehome.yml");
		expect(datasources).toHaveLength(1);
		expect(datasources[0]).toMatchObject({ uid: "edgehome-prometheus", type: "prometheus", url: "http://prometheus:9090" });
	});

	it("loads every dashboard file from one folder, read-only", () => {
		const { providers } = provisioned<{ providers: { type: string; allowUiUpdates: boolean; options: { path: string } }[] }>("dashboards/edgehome.yml");
		expect(providers).toHaveLength(1);
		expect(providers[0]).toMatchObject({ type: "file", allowUiUpdates: false, options: { path: "/var/lib/grafana/dashboards/edgehome" } });
	});
});

describe("Grafana dashboards", () => {
	it("are the region overview, routing, auth, wallet, notices and NATS, each with its own uid", () => {
		expect(dashboards.map(d => d.json.uid).sort()).toEqual(
			["edgehome-auth", "edgehome-nats", "edgehome-notices", "edgehome-overview", "edgehome-routing", "edgehome-wallet"].sort()
		);
		for (const { file, json } of dashboards) expect(file).toBe(`${json.uid}.json`);
	});

	it("read the provisioned datasource in every panel, query and variable", () => {
		for (const { json } of dashboards) {
			for (const v of json.templating.list) expect(v.datasource?.uid, `${json.uid} variable ${v.name}`).toBe("edgehome-prometheus");
			for (const p of json.panels.filter(p => p.type !== "row")) {
				expect(p.datasource?.uid, `${json.uid}: ${p.title}`).toBe("edgehome-prometheus");
				expect(p.targets?.length, `${json.uid}: ${p.title} has no query`).toBeGreaterThan(0);
				for (const t of p.targets ?? []) expect(t.datasource?.uid, `${json.uid}: ${p.title}`).toBe("edgehome-prometheus");
			}
		}
	});

	it("lay their panels out on the 24-column grid, none over another, with ids unique in the dashboard", () => {
		for (const { json } of dashboards) {
			const ids = json.panels.map(p => p.id);
			expect(new Set(ids).size, json.uid).toBe(ids.length);
			const taken = new Set<string>();
			for (const p of json.panels) {
				const { x, y, w, h } = p.gridPos;
				expect(x >= 0 && w > 0 && x + w <= 24, `${json.uid}: ${p.title} ${JSON.stringify(p.gridPos)}`).toBe(true);
				for (let col = x; col < x + w; col++)
					for (let row = y; row < y + h; row++) {
						const cell = `${col},${row}`;
						expect(taken.has(cell), `${json.uid}: ${p.title} overlaps another panel at ${cell}`).toBe(false);
						taken.add(cell);
					}
			}
		}
	});

	it("query PromQL that promtool parses, once Grafana's variables are filled in", () => {
		const file = join(scratch, "queries.yml");
		writeFileSync(
			file,
			toYaml({ groups: [{ name: "dashboards", rules: queries.map((q, i) => ({ record: `dashboard_query_${i}`, expr: asPromQL(q.expr) })) }] })
		);
		const check = spawnSync("promtool", ["check", "rules", file], { encoding: "utf8" });
		expect(check.error).toBeUndefined();
		const output = `${check.stdout}${check.stderr}`;
		const failing = [...output.matchAll(/dashboard_query_(\d+)/g)].map(m => queries[Number(m[1])]);
		expect(failing, output).toEqual([]);
		expect(check.status, output).toBe(0);
		expect(output).toContain(`SUCCESS: ${queries.length} rules found`);
	});

	it("read only metrics that exist, the NATS exporter's only on the NATS dashboard", () => {
		for (const q of queries)
			for (const name of metricNames(q.expr)) {
				expect(KNOWN_METRICS.has(name), `${q.dashboard}: ${q.panel} reads ${name}`).toBe(true);
				if (EXPORTER_METRICS.includes(name)) expect(q.dashboard, `${q.panel} reads ${name}`).toBe("edgehome-nats");
			}
	});

	it("show every metric the ops ports serve, and every exporter metric they name", () => {
		const shown = new Set(queries.flatMap(q => metricNames(q.expr)));
		for (const name of [...Object.values(METRIC), ...EXPORTER_METRICS]) expect(shown.has(name), `${name} is on no dashboard`).toBe(true);
	});
});
