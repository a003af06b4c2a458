import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { brokerConfig } from "../../../../app/broker.config.ts";
import type { RegionNode } from "../../../../app/node.ts";
import { startRegionNode } from "../../../../app/node.ts";
import { loadRegions } from "../../../../regions/loader.ts";
import { METRIC } from "../../../../regions/runtime/metric-names.ts";
import { freePort } from "../../../harness/free-port.ts";
import { gatewaySchemas, gatewayUrl, http } from "../../../harness/gateways.ts";

const TOKEN = "ops-token-for-the-ops-reporter-spec-0123456789";
let node: RegionNode;
let base: string;

const get = (path: string, authorization?: string) => fetch(`${base}${path}`, { headers: authorization ? { authorization } : {} });
const scrape = async () => (await get("/metrics", `Bearer ${TOKEN}`)).text();

beforeAll(async () => {
	const port = await freePort();
	base = `http://127.0.0.1:${port}`;
	node = await startRegionNode({
		region: loadRegions().find(r => r.id === "ap-south")!,
		transport: "embedded",
		services: ["sv-config", "sv-region", "sv-user", "auth-jwt", "auth-rbac"],
		schemas: gatewaySchemas(),
		stores: { sql: "sqlite::memory:", keyPrefix: "ops:" },
		env: { EDGEHOME_METRICS_PORT: String(port), EDGEHOME_OPS_TOKEN: TOKEN, EDGEHOME_NAMESPACE_PREFIX: "ops-" },
		overrides: { logger: false }
	});
});
afterAll(() => node.stop());

describe("ops endpoint: who may read it", () => {
	it("answers liveness to anyone, saying nothing but ok", async () => {
		const res = await get("/healthz");
		expect(res.status).toBe(200);
		expect(await res.json()).toEqual({ status: "ok" });
	});

	it("refuses /metrics and /readyz without a token, with a wrong one, or with another scheme", async () => {
		for (const path of ["/metrics", "/readyz"])
			for (const authorization of [undefined, `Bearer ${TOKEN}x`, "Bearer wrong", `Basic ${Buffer.from(`ops:${TOKEN}`).toString("base64")}`, TOKEN]) {
				const res = await get(path, authorization);
				expect(res.status, `${path} with ${authorization}`).toBe(401);
				expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
				const text = await res.text();
				expect(text).not.toMatch(/edgehome_|ready/);
			}
	});

	it("accepts the configured bearer token, the scheme in any case", async () => {
		expect((await get("/metrics", `Bearer ${TOKEN}`)).status).toBe(200);
		expect((await get("/readyz", `bearer ${TOKEN}`)).status).toBe(200);
	});

	it("cannot be turned on without a token of at least 32 characters", () => {
		const region = loadRegions().find(r => r.id === "cn-east")!;
		for (const token of [undefined, "", "short", `${"x".repeat(20)} ${"y".repeat(20)}`])
			expect(() => brokerConfig({ region, group: "all", transport: "nats", env: { EDGEHOME_OPS_TOKEN: token } }), String(token)).toThrow(
				/EDGEHOME_OPS_TOKEN.*at least 32 characters/
			);
		expect(brokerConfig({ region, group: "all", transport: "nats", env: { EDGEHOME_METRICS_PORT: "off" } }).metrics).toBe(false);
	});

	it("answers 404 for anything else and 405 for other methods", async () => {
		expect((await get("/admin", `Bearer ${TOKEN}`)).status).toBe(404);
		expect((await fetch(`${base}/metrics`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(405);
	});
});

describe("ops endpoint: /metrics", () => {
	it("passes promtool check metrics", async () => {
		await node.broker.call("sv-config.set", { key: "metrics.probe", value: 1 });
		await http(gatewayUrl(node.broker, "api-www"), "GET", "/api/v1/regions");
		const text = await scrape();
		const check = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
		expect(check.error).toBeUndefined();
		expect(`${check.stdout}${check.stderr}`).toBe("");
		expect(check.status).toBe(0);
	});

	it("serves exactly the metrics the README's table names", async () => {
		const readme = readFileSync("README.md", "utf8");
		const section = readme.slice(readme.indexOf("### Health and metrics"), readme.indexOf("\n## ", readme.indexOf("### Health and metrics")));
		const documented = new Set(
			[...section.matchAll(/^\| (.+?) \|/gm)].flatMap(([, cell]) => [...cell!.matchAll(/`((?:edgehome|process|nodejs)_\w+)`/g)].map(m => m[1]!))
		);
		expect([...documented].sort()).toEqual(Object.values(METRIC).sort());
		const served = [...(await scrape()).matchAll(/^# TYPE (\w+) /gm)].map(m => m[1]!);
		expect(served.sort()).toEqual(Object.values(METRIC).sort());
	});

	it("labels every sample with the region, in snake_case", async () => {
		const samples = (await scrape()).split("\n").filter(l => l && !l.startsWith("#"));
		expect(samples.length).toBeGreaterThan(10);
		for (const s of samples) {
			expect(s).toContain('region="ap-south"');
			for (const [, label] of s.matchAll(/[{,]([A-Za-z_]+)=/g)) expect(label).toMatch(/^[a-z_]+$/);
		}
	});

	it("serves the project's counters at 0 before their first event", async () => {
		const text = await scrape();
		for (const line of [
			'edgehome_moves_total{region="ap-south",outcome="moved"} 0',
			'edgehome_moves_total{region="ap-south",outcome="rolled-back"} 0',
			'edgehome_routing_forwards_total{region="ap-south",to="cn-east"} 0',
			'edgehome_routing_forwards_total{region="ap-south",to="eu-central"} 0',
			'edgehome_routing_heals_total{region="ap-south"} 0',
			'edgehome_endpoint_failures_total{region="ap-south",service="sv-user"} 0'
		])
			expect(text).toContain(line);
	});

	it("serves no argv, uid, host name, addresses, nor Moleculer's per-action series", async () => {
		const text = await scrape();
		expect(text).not.toMatch(/moleculer_|os_|argv|uid|mac|hostname|ip_?list/i);
		expect(text).not.toContain(hostname());
		for (const arg of process.argv.slice(1)) expect(text).not.toContain(arg);
		expect(text).not.toMatch(/\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b/);
		expect(text).not.toMatch(/([0-9a-f]{2}:){5}[0-9a-f]{2}/i);
		expect(text).not.toContain("sv-config.set");
	});
});

/**
 * Counters and histogram counts by series, from one scrape; except the node's aggregate work
 * (CPU, directory lookups), which carries no request's labels and is documented as such.
 */
function counts(text: string): Map<string, number> {
	const out = new Map<string, number>();
	for (const line of text.split("\n")) {
		const m = /^(\w+(?:_total|_count))(\{[^}]*\})? (\S+)$/.exec(line);
		if (m && !/^(process_|edgehome_directory_)/.test(m[1]!)) out.set(`${m[1]}${m[2] ?? ""}`, Number(m[3]));
	}
	return out;
}

/** What a batch of requests moved: series → increase. */
async function moved(send: () => Promise<unknown>): Promise<Record<string, number>> {
	const before = counts(await scrape());
	await send();
	const after = counts(await scrape());
	return Object.fromEntries([...after].filter(([k, v]) => v !== (before.get(k) ?? 0)).map(([k, v]) => [k, v - (before.get(k) ?? 0)]));
}

describe("ops endpoint: no login-existence oracle", () => {
	it("moves the same series by the same amounts for an unknown login as for a known one with a wrong password", async () => {
		const www = gatewayUrl(node.broker, "api-www");
		expect((await http(www, "POST", "/api/v1/auth/register", { body: { username: "oracle-ann", password: "a long passphrase 1" } })).status).toBe(201);
		const attempts = (login: string) => async () => {
			for (let i = 0; i < 3; i++) expect((await http(www, "POST", "/api/v1/auth/login", { body: { login, password: `wrong guess ${i}` } })).status).toBe(401);
		};
		const unknown = await moved(attempts("oracle-nobody"));
		const known = await moved(attempts("oracle-ann"));
		expect(Object.keys(known)).toContain('edgehome_http_requests_total{region="ap-south",gateway="api-www",route="POST /api/v1/auth/login",code="401"}');
		expect(unknown).toEqual(known);
		expect(await scrape()).not.toMatch(/USER_NOT_FOUND|INVALID_CREDENTIALS|sv-region\.resolve|resolveLogin|authenticate/);
	});
});

describe("ops endpoint: /readyz", () => {
	it("is ready once started, the transporter connected and the stores answer", async () => {
		const res = await get("/readyz", `Bearer ${TOKEN}`);
		expect(res.status).toBe(200);
		expect(await res.json()).toEqual({
			status: "ready",
			ready: true,
			region: "ap-south",
			serving: "own-users",
			global: "available",
			bus: "connected",
			checks: { startup: "ok", broker: "ok", transporter: "ok", stores: "ok" }
		});
	});

	it("turns not-ready when the relational store is gone, with a stable word and no store message", async () => {
		await node.stores.sql.close();
		const res = await get("/readyz", `Bearer ${TOKEN}`);
		expect(res.status).toBe(503);
		const text = await res.text();
		expect(JSON.parse(text)).toEqual({
			status: "not-ready",
			ready: false,
			region: "ap-south",
			serving: "none",
			global: "available",
			bus: "connected",
			checks: { startup: "ok", broker: "ok", transporter: "ok", stores: "failing" }
		});
		expect(text).not.toMatch(/sql|sqlite|closed|database/i);
	});
});
