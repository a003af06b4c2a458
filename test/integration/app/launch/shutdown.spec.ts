import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../../../app/node.ts";
import { startRegionNode } from "../../../../app/node.ts";
import { loadRegions } from "../../../../regions/loader.ts";
import { launcherEnv, runId } from "../../../harness/real-servers.ts";

const run = runId();
const env = launcherEnv(run, { EDGEHOME_SHUTDOWN_TIMEOUT_MS: "10000" });
let server: ChildProcess;
let caller: RegionNode;

beforeAll(async () => {
	server = spawn(process.execPath, ["test/harness/slow-node.ts"], { env: { ...env, SLOW_NODE_DELAY_MS: "1500" }, stdio: ["ignore", "pipe", "pipe"] });
	let stderr = "";
	server.stderr!.on("data", d => (stderr += d));
	const [line] = (await Promise.race([
		once(server.stdout!, "data"),
		once(server, "exit").then(() => Promise.reject(new Error(`slow node exited: ${stderr}`)))
	])) as [Buffer];
	expect(line.toString()).toMatch(/ready/);
	caller = await startRegionNode({
		region: loadRegions().find(r => r.id === "cn-east")!,
		transport: "nats",
		services: [],
		group: "caller",
		stores: { sql: "sqlite::memory:", keyPrefix: "caller:" },
		env,
		overrides: { logger: false }
	});
	await caller.broker.waitForServices("slow", 10_000);
});

afterAll(async () => {
	server?.kill("SIGKILL");
	await caller?.stop();
});

describe("graceful shutdown", () => {
	it("finishes all 200 in-flight calls on SIGTERM, then exits 0", async () => {
		const calls = Array.from({ length: 200 }, (_, n) => caller.broker.call("slow.work", { n }, { retries: 0 }));
		const settled = Promise.allSettled(calls);
		// Wait until the node is working on them, so the signal lands mid-flight.
		for (let i = 0; i < 50 && ((await caller.broker.call("slow.started")) as number) < 100; i++) await new Promise(r => setTimeout(r, 20));
		const exited = once(server, "exit");
		server.kill("SIGTERM");
		const results = await settled;
		const rejected = results.filter(r => r.status === "rejected");
		expect(rejected.map(r => (r as PromiseRejectedResult).reason?.message)).toEqual([]);
		expect(results.map(r => (r as PromiseFulfilledResult<{ n: number }>).value.n)).toEqual(Array.from({ length: 200 }, (_, n) => n));
		const [code, signal] = await exited;
		expect(signal).toBeNull();
		expect(code).toBe(0);
	});
});
