import type { ChildProcess } from "node:child_process";
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml, stringify as toYaml } from "yaml";
import { freePort } from "../../harness/free-port.ts";
import { http } from "../../harness/gateways.ts";
import type { RegionPorts } from "../../harness/region-process.ts";
import { regionFilesWithFreePorts } from "../../harness/region-process.ts";
import type { DashboardQuery } from "../../unit/deploy/dashboard-queries.ts";
import { asPromQL, dashboardQueries, needsNats, PROMETHEUS } from "../../unit/deploy/dashboard-queries.ts";

/**
 * A real Prometheus (Debian's `prometheus`) scraping `npm start` with the shipped configuration
 * (deploy/prometheus/prometheus.yml: its job, token file and alert rules; only the targets, the token
 * file's path and the intervals differ), while a client uses the cluster's gateways. Every query of
 * the Grafana dashboards then parses and returns a series, except those only a NATS server can
 * answer (the exporter's, the certificate the in-process bus does not have): those must parse.
 */
const TOKEN = randomBytes(24).toString("hex");
const ADMIN_PASSWORD = "scrape lantern forty-seven ripple";
const PASSWORD = "metrics for everyone 42";
const dir = mkdtempSync(join(tmpdir(), "edgehome-prometheus-"));
let ports: Record<string, RegionPorts>;
let regions: string[];
let launcher: ChildProcess;
let prometheus: ChildProcess;
let api: string;
let output = "";
/** Seconds a queried series took to appear after the first requests, for the log. */
let seriesAfterMs = 0;

interface ScrapeJob {
	job_name: string;
	authorization: Record<string, string>;
	static_configs: unknown[];
}
interface PrometheusConfig {
	global: Record<string, string>;
	rule_files: string[];
	scrape_configs: ScrapeJob[];
}

interface QueryAnswer {
	status: string;
	error?: string;
	data?: { result: { metric: Record<string, string>; value: [number, string] }[] };
}

async function query(expr: string): Promise<QueryAnswer> {
	const res = await fetch(`${api}/api/v1/query?${new URLSearchParams({ query: expr })}`);
	return (await res.json()) as QueryAnswer;
}

async function values(expr: string): Promise<Record<string, number>> {
	const answer = await query(expr);
	const key = (labels: Record<string, string>) =>
		Object.entries(labels)
			.filter(([name]) => name !== "__name__")
			.map(([, value]) => value)
			.join(" ");
	return Object.fromEntries((answer.data?.result ?? []).map(r => [key(r.metric), Number(r.value[1])]));
}

/** The shipped configuration, pointed at this cluster's ops ports, scraping every second. */
function configFor(tokenFile: string): PrometheusConfig {
	const shipped = parseYaml(readFileSync(join(PROMETHEUS, "prometheus.yml"), "utf8")) as PrometheusConfig;
	const job = shipped.scrape_configs.find(j => j.job_name === "edgehome")!;
	return {
		...shipped,
		global: { ...shipped.global, scrape_interval: "1s", scrape_timeout: "1s", evaluation_interval: "1s" },
		rule_files: shipped.rule_files.map(f => join(PROMETHEUS, f)),
		scrape_configs: [
			{
				...job,
				authorization: { ...job.authorization, credentials_file: tokenFile },
				static_configs: regions.map(r => ({ targets: [`127.0.0.1:${ports[r]!.metrics}`], labels: { region: r, group: "embedded" } }))
			}
		]
	};
}

async function untilOk(url: string, what: string, proc: ChildProcess, ms: number, headers: Record<string, string> = {}): Promise<void> {
	const deadline = Date.now() + ms;
	while (
		!(await fetch(url, { headers }).then(
			r => r.ok,
			() => false
		))
	) {
		if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`${what} not ready (exit ${proc.exitCode}); it printed:\n${output.slice(-4000)}`);
		await sleep(100);
	}
}

/** What a client does: logins good and bad, a registration, refresh, wallet, notices, a stranger without a token, a wrong path. */
async function traffic(round: number): Promise<void> {
	const cn = `http://127.0.0.1:${ports["cn-east"]!.app}`;
	const username = `scraped${round}`;
	// Homed in eu-central, registered and logged in through cn-east: forwarded there.
	expect((await http(cn, "POST", "/api/v1/auth/register", { body: { username, password: PASSWORD, country: "DE" } })).status).toBe(201);
	expect((await http(cn, "POST", "/api/v1/auth/login", { body: { login: username, password: "not the password" } })).status).toBe(401);
	const admin = await http(cn, "POST", "/api/v1/auth/login", { body: { login: "admin", password: ADMIN_PASSWORD } });
	expect(admin.status, admin.text).toBe(200);
	const user = await http(cn, "POST", "/api/v1/auth/login", { body: { login: username, password: PASSWORD } });
	expect(user.status, user.text).toBe(200);
	const refreshed = await http(cn, "POST", "/api/v1/auth/refresh", { body: { refreshToken: user.body.refreshToken } });
	expect(refreshed.status, refreshed.text).toBe(200);
	const token = refreshed.body.accessToken as string;
	expect((await http(cn, "GET", "/api/v1/wallet", { token })).status).toBe(200);
	expect((await http(cn, "POST", "/api/v1/wallet/transfers", { token, body: {} })).status).toBeGreaterThanOrEqual(400);
	expect((await http(cn, "GET", "/api/v1/me/notices/unread-count", { token })).status).toBe(200);
	expect((await http(cn, "GET", "/api/v1/me")).status).toBe(401);
	expect((await http(cn, "POST", "/api/v1/auth/logout", { token })).status).toBe(204);
	for (const region of regions) {
		const base = `http://127.0.0.1:${ports[region]!.app}`;
		expect((await http(base, "GET", "/api/v1/regions")).status).toBe(200);
		expect((await http(base, "GET", "/api/v1/no-such-route")).status).toBe(404);
	}
}

/** Dashboard queries that fail: a parse error for any, no series for those the embedded cluster can answer. */
async function unanswered(queries: DashboardQuery[]): Promise<string[]> {
	const problems: string[] = [];
	for (const q of queries) {
		const answer = await query(asPromQL(q.expr));
		if (answer.status !== "success") problems.push(`${q.dashboard}: ${q.panel}: ${answer.error}`);
		else if (!needsNats(q.expr) && !answer.data?.result.length) problems.push(`${q.dashboard}: ${q.panel}: no series for ${asPromQL(q.expr)}`);
	}
	return problems;
}

beforeAll(async () => {
	ports = await regionFilesWithFreePorts(join(dir, "regions"));
	regions = Object.keys(ports).sort();
	const tokenFile = join(dir, "ops-token");
	writeFileSync(tokenFile, TOKEN, { mode: 0o600 });
	const configFile = join(dir, "prometheus.yml");
	writeFileSync(configFile, toYaml(configFor(tokenFile)));
	const check = spawnSync("promtool", ["check", "config", configFile], { encoding: "utf8" });
	if (check.status !== 0) throw new Error(`the shipped configuration, pointed at this cluster, fails promtool check config:\n${check.stdout}${check.stderr}`);

	launcher = spawn(process.execPath, ["app/launch/embedded.ts", "--memory"], {
		env: { ...process.env, EDGEHOME_REGIONS_DIR: join(dir, "regions"), EDGEHOME_OPS_TOKEN: TOKEN, ADMIN_PASSWORD },
		stdio: ["ignore", "pipe", "pipe"]
	});
	launcher.stdout!.on("data", d => (output += d));
	launcher.stderr!.on("data", d => (output += d));
	const port = await freePort();
	api = `http://127.0.0.1:${port}`;
	prometheus = spawn(
		"prometheus",
		[`--config.file=${configFile}`, `--storage.tsdb.path=${join(dir, "tsdb")}`, `--web.listen-address=127.0.0.1:${port}`, "--log.level=warn"],
		{ stdio: ["ignore", "pipe", "pipe"] }
	);
	prometheus.stdout!.on("data", d => (output += d));
	prometheus.stderr!.on("data", d => (output += d));
	await untilOk(`${api}/-/ready`, "prometheus", prometheus, 20_000);
	for (const region of regions)
		await untilOk(`http://127.0.0.1:${ports[region]!.metrics}/readyz`, `npm start's ${region}`, launcher, 45_000, { authorization: `Bearer ${TOKEN}` });

	const started = Date.now();
	await traffic(1);
	const queries = dashboardQueries();
	for (let round = 2; ; round++) {
		// A few scrapes after the requests. A counter's first sample is no increase to Prometheus, so a route's
		// `rate(...) > 0` needs a second round of requests.
		await sleep(1500);
		const problems = await unanswered(queries);
		if (!problems.length) break;
		if (Date.now() - started > 30_000) throw new Error(`dashboard queries still unanswered after 30 s:\n${problems.join("\n")}`);
		await traffic(round);
	}
	seriesAfterMs = Date.now() - started;
}, 90_000);

afterAll(async () => {
	for (const proc of [launcher, prometheus])
		if (proc && proc.exitCode === null) {
			const gone = new Promise(r => proc.once("exit", r));
			proc.kill("SIGKILL");
			await gone;
		}
	rmSync(dir, { recursive: true, force: true });
});

describe("Prometheus scraping npm start with the shipped configuration", () => {
	it("scrapes every region's ops port with the token from the credentials file", async () => {
		expect(await values('up{job="edgehome"}')).toEqual(Object.fromEntries(regions.map(r => [`embedded 127.0.0.1:${ports[r]!.metrics} edgehome ${r}`, 1])));
	});

	it("answers every dashboard query with a series; the NATS server's queries parse", async () => {
		const queries = dashboardQueries();
		expect(await unanswered(queries)).toEqual([]);
		const natsOnly = queries.filter(q => needsNats(q.expr));
		console.log(
			`${queries.length - natsOnly.length} dashboard queries answered ${seriesAfterMs} ms after the first requests; ${natsOnly.length} need a NATS server and only parse`
		);
		expect(natsOnly.map(q => q.dashboard)).toEqual(natsOnly.map(() => "edgehome-nats"));
	});

	it("loads the alert rules, evaluates each without error, and fires none on a healthy cluster", async () => {
		const rulesOf = async () =>
			(
				(await (await fetch(`${api}/api/v1/rules`)).json()) as { data: { groups: { rules: { name: string; health: string; lastError?: string }[] }[] } }
			).data.groups.flatMap(g => g.rules);
		const files = readFileSync(join(PROMETHEUS, "rules", "edgehome-alerts.yml"), "utf8");
		const names = [...files.matchAll(/- alert: (\w+)/g)].map(m => m[1]);
		const deadline = Date.now() + 5000;
		let rules = await rulesOf();
		while (rules.some(r => r.health !== "ok") && Date.now() < deadline) {
			await sleep(200);
			rules = await rulesOf();
		}
		expect(rules.map(r => r.name).sort()).toEqual(names.sort());
		expect(rules.filter(r => r.health !== "ok")).toEqual([]);
		const { data } = (await (await fetch(`${api}/api/v1/alerts`)).json()) as { data: { alerts: { labels: { alertname: string }; state: string }[] } };
		expect(data.alerts.filter(a => a.state === "firing").map(a => a.labels.alertname)).toEqual([]);
	});

	it("serves what the new alerts read: readiness, the next key rotation, both outboxes' lag", async () => {
		expect(Object.values(await values("edgehome_ready"))).toEqual([1, 1, 1]);
		const days = Object.values(await values("(max by (region) (edgehome_signing_key_rotation_timestamp_seconds) - time()) / 86400"));
		expect(days).toHaveLength(3);
		// EDGEHOME_JWT_ROTATE_DAYS defaults to 30: each region's first key was made moments ago.
		for (const d of days) expect(d).toBeGreaterThan(29.9);
		for (const d of days) expect(d).toBeLessThanOrEqual(30);
		const lag = await values("max by (region, outbox) (edgehome_outbox_oldest_age_seconds)");
		expect(Object.keys(lag).sort()).toEqual(regions.flatMap(r => [`money_outbox ${r}`, `notice_outbox ${r}`]).sort());
		for (const seconds of Object.values(lag)) expect(seconds).toBeLessThan(60);
	});
});
