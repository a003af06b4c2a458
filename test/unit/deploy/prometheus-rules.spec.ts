import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { KNOWN_METRICS, metricNames, PROMETHEUS } from "./dashboard-queries.ts";

/**
 * The alert rules of deploy/prometheus/rules, checked with Debian's promtool (`.ci/run` installs it):
 * they load, each alert fires and stays quiet in its unit tests, and they read only metrics that exist.
 */
interface Rule {
	alert?: string;
	record?: string;
	expr: string;
	for?: string;
	labels?: Record<string, string>;
	annotations?: Record<string, string>;
}
interface AlertTest {
	eval_time: string;
	alertname: string;
	exp_alerts?: unknown[];
}

const RULES_DIR = join(PROMETHEUS, "rules");
const TESTS_DIR = join(PROMETHEUS, "tests");
const ruleFiles = readdirSync(RULES_DIR)
	.filter(f => f.endsWith(".yml"))
	.map(f => join(RULES_DIR, f));
const testFiles = readdirSync(TESTS_DIR)
	.filter(f => f.endsWith(".test.yml"))
	.map(f => join(TESTS_DIR, f));
const rules: Rule[] = ruleFiles.flatMap(f => (parseYaml(readFileSync(f, "utf8")) as { groups: { rules: Rule[] }[] }).groups.flatMap(g => g.rules));
const alerts = rules.filter(r => r.alert);
const alertTests: AlertTest[] = testFiles.flatMap(f =>
	(parseYaml(readFileSync(f, "utf8")) as { tests: { alert_rule_test?: AlertTest[] }[] }).tests.flatMap(t => t.alert_rule_test ?? [])
);
const scratch = mkdtempSync(join(tmpdir(), "edgehome-rules-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const promtool = (...args: string[]) => {
	const run = spawnSync("promtool", args, { encoding: "utf8" });
	if (run.error) throw new Error(`promtool does not run (Debian's prometheus package installs it): ${run.error.message}`);
	return { status: run.status, output: `${run.stdout}${run.stderr}` };
};

describe("deploy/prometheus alert rules", () => {
	it("load in promtool check rules", () => {
		const check = promtool("check", "rules", ...ruleFiles);
		expect(check.output).toMatch(new RegExp(`SUCCESS: ${rules.length} rules found`));
		expect(check.status, check.output).toBe(0);
	});

	it("pass their promtool unit tests", () => {
		const run = promtool("test", "rules", ...testFiles);
		expect(run.output).toMatch(/SUCCESS/);
		expect(run.status, run.output).toBe(0);
	});

	it("cover what an operator must hear of, each alert once", () => {
		const names = alerts.map(a => a.alert!);
		expect(new Set(names).size).toBe(names.length);
		const reads = (metric: string) => alerts.filter(a => metricNames(a.expr).includes(metric)).map(a => a.alert);
		// Region unreachable, readiness, the WRONG_REGION heal rate, move failures, gateway errors and latency,
		// dead letters, outbox and channel lag, certificate and key expiry.
		for (const metric of [
			"edgehome_region_reachable",
			"edgehome_ready",
			"up",
			"edgehome_routing_heals_total",
			"edgehome_moves_total",
			"edgehome_http_requests_total",
			"edgehome_http_request_duration_seconds",
			"edgehome_channel_dead_lettered_total",
			"edgehome_channel_pending",
			"edgehome_outbox_oldest_age_seconds",
			"edgehome_nats_certificate_expiry_timestamp_seconds",
			"edgehome_signing_key_rotation_timestamp_seconds"
		])
			expect(reads(metric), metric).not.toEqual([]);
	});

	it("have a firing and a quiet unit test for every alert, and none for an alert that does not exist", () => {
		for (const { alert } of alerts) {
			const cases = alertTests.filter(t => t.alertname === alert);
			expect(
				cases.some(t => (t.exp_alerts ?? []).length > 0),
				`${alert} fires in no test`
			).toBe(true);
			expect(
				cases.some(t => (t.exp_alerts ?? []).length === 0),
				`${alert} is quiet in no test`
			).toBe(true);
		}
		for (const t of alertTests) expect(alerts.map(a => a.alert)).toContain(t.alertname);
	});

	it("read only metrics the ops ports serve, and Prometheus's own up", () => {
		for (const { alert, expr } of alerts)
			for (const name of metricNames(expr)) expect(KNOWN_METRICS.has(name) && !/^(gnatsd|jetstream)_/.test(name), `${alert} reads ${name}`).toBe(true);
	});

	it("say how bad and what it is: a severity, a summary and a description", () => {
		for (const a of alerts) {
			expect(["warning", "critical"], a.alert).toContain(a.labels?.severity);
			expect(a.annotations?.summary, a.alert).toBeTruthy();
			expect(a.annotations?.description, a.alert).toBeTruthy();
		}
	});

	it("are loaded by deploy/prometheus/prometheus.yml", () => {
		const config = parseYaml(readFileSync(join(PROMETHEUS, "prometheus.yml"), "utf8")) as { rule_files?: string[] };
		expect(config.rule_files).toEqual(["rules/*.yml"]);
	});

	it("fail promtool check rules with a broken expression: the check can fail", () => {
		const broken = join(scratch, "broken.yml");
		writeFileSync(broken, "groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: sum by (region (edgehome_ready)\n");
		const check = promtool("check", "rules", broken);
		expect(check.status).not.toBe(0);
		expect(check.output).toMatch(/parse error|unexpected/);
	});
});
