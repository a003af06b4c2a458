import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadRegions } from "../../../regions/loader.ts";
import { startRegionNode } from "../../../regions/node.ts";
import type { RegionNode } from "../../../regions/node.ts";
import { freePort } from "../../harness/free-port.ts";

let node: RegionNode;
let base: string;

beforeAll(async () => {
	const port = await freePort();
	base = `http://127.0.0.1:${port}`;
	node = await startRegionNode({
		region: loadRegions().find(r => r.id === "ap-south")!,
		transport: "embedded",
		stores: { sql: "sqlite::memory:", keyPrefix: "health:" },
		env: { EDGEHOME_METRICS_PORT: String(port), EDGEHOME_NAMESPACE_PREFIX: "health-" },
		overrides: { logger: false }
	});
});
afterAll(() => node.stop());

describe("ops endpoint", () => {
	it("answers liveness", async () => {
		const res = await fetch(`${base}/healthz`);
		expect(res.status).toBe(200);
		expect(await res.json()).toMatchObject({ status: "ok", nodeID: node.broker.nodeID });
	});

	it("is ready once the broker started, the transporter connected and the stores answer", async () => {
		const res = await fetch(`${base}/readyz`);
		expect(res.status).toBe(200);
		expect(await res.json()).toEqual({
			status: "ready",
			ready: true,
			checks: { broker: "ok", transporter: "ok", stores: "ok" }
		});
	});

	it("serves Prometheus metrics labelled with the region", async () => {
		await node.broker.call("sv-config.set", { key: "metrics.probe", value: 1 });
		const text = await (await fetch(`${base}/metrics`)).text();
		const line = text.split("\n").find(l => l.startsWith("moleculer_request_total{") && l.includes('action="sv-config.set"'));
		expect(line).toContain('region="ap-south"');
	});

	it("answers 404 for anything else", async () => {
		expect((await fetch(`${base}/admin`)).status).toBe(404);
	});

	it("turns not-ready, naming the store, when the relational store is gone", async () => {
		await node.stores.sql.close();
		const res = await fetch(`${base}/readyz`);
		expect(res.status).toBe(503);
		const body = (await res.json()) as { checks: Record<string, string> };
		expect(body.checks.stores).toMatch(/^sql: /);
	});
});
