import { networkInterfaces } from "node:os";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { RegionNode } from "../../../../app/node.ts";
import { startRegionNode } from "../../../../app/node.ts";
import { loadRegions } from "../../../../regions/loader.ts";
import type { EdgeTopology } from "../../../harness/edge-topology.ts";
import { startEdgeTopology } from "../../../harness/edge-topology.ts";
import { freePort } from "../../../harness/free-port.ts";

/** The ops port of a NATS-mode node on its own nats-server, which the test stops and starts again. */
const TOKEN = "ops-readiness-spec-token-0123456789abcdef";
let cluster: EdgeTopology;
let node: RegionNode;
let port: number;
const logged: string[] = [];

const readyz = async (host = "127.0.0.1") => {
	const res = await fetch(`http://${host}:${port}/readyz`, { headers: { authorization: `Bearer ${TOKEN}` } });
	return { status: res.status, body: (await res.json()) as { status: string; checks: Record<string, string> } };
};

/** Polls /readyz until it answers `status`; resolves with the time that took. */
async function readyzBecomes(status: number, withinMs: number): Promise<number> {
	const started = Date.now();
	for (;;) {
		if ((await readyz()).status === status) return Date.now() - started;
		if (Date.now() - started > withinMs) throw new Error(`/readyz did not answer ${status} within ${withinMs} ms`);
		await new Promise(r => setTimeout(r, 100));
	}
}

/** An address of this machine other than 127.0.0.1: a non-loopback interface, else 127.0.0.2. */
function otherAddress(): string {
	const external = Object.values(networkInterfaces())
		.flat()
		.find(a => a && a.family === "IPv4" && !a.internal);
	return external?.address ?? "127.0.0.2";
}

beforeAll(async () => {
	cluster = await startEdgeTopology(["cn-east", "ap-south"]);
	port = await freePort();
	node = await startRegionNode({
		region: loadRegions().find(r => r.id === "cn-east")!,
		transport: "nats",
		services: ["sv-config"],
		stores: { sql: "sqlite::memory:", keyPrefix: "ops-readiness:" },
		env: {
			EDGEHOME_NATS_URL: cluster.urls["cn-east"],
			EDGEHOME_METRICS_PORT: String(port),
			EDGEHOME_OPS_TOKEN: TOKEN,
			EDGEHOME_NAMESPACE_PREFIX: "ops-readiness-"
		},
		overrides: { logger: false }
	});
	for (const level of ["info", "warn"] as const)
		vi.spyOn(node.broker.logger, level).mockImplementation((...args: unknown[]) => void logged.push(args.join(" ")));
}, 60_000);

afterAll(async () => {
	await node?.stop();
	await cluster?.stop();
});

describe("ops port in NATS mode", () => {
	it("listens on 127.0.0.1 by default, not on the machine's other addresses", async () => {
		expect((await readyz()).status).toBe(200);
		await expect(fetch(`http://${otherAddress()}:${port}/healthz`, { signal: AbortSignal.timeout(2000) })).rejects.toThrow();
	});
});

describe("readiness follows the region's NATS connection", () => {
	it("answers 503 within 5 s of the NATS server going away, logs it, and is ready again once it is back", async () => {
		const facts = { region: "cn-east", global: "available" };
		expect(await readyz()).toEqual({
			status: 200,
			body: {
				status: "ready",
				ready: true,
				serving: "own-users",
				bus: "connected",
				...facts,
				checks: { startup: "ok", broker: "ok", transporter: "ok", stores: "ok" }
			}
		});
		await cluster.kill("cn-east");
		const tookMs = await readyzBecomes(503, 5000);
		expect(tookMs).toBeLessThan(5000);
		expect((await readyz()).body).toEqual({
			status: "not-ready",
			ready: false,
			serving: "none",
			bus: "disconnected",
			...facts,
			checks: { startup: "ok", broker: "ok", transporter: "disconnected", stores: "ok" }
		});
		expect(logged.some(l => /bus connection lost/.test(l))).toBe(true);

		await cluster.restart("cn-east");
		await readyzBecomes(200, 20_000);
		expect(logged.some(l => /bus connection back/.test(l))).toBe(true);
	}, 60_000);
});
