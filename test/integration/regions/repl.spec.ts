import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadRegions } from "../../../regions/loader.ts";
import { startRegionNode } from "../../../regions/node.ts";
import type { RegionNode } from "../../../regions/node.ts";
import { REAL, runId } from "../../harness/real-servers.ts";

const run = runId();
const env = { ...process.env, EDGEHOME_NAMESPACE_PREFIX: `t${run}-`, EDGEHOME_NATS_URL: REAL.nats, EDGEHOME_METRICS_PORT: "off", EDGEHOME_CACHER: "off" };
let euNode: RegionNode;
let repl: ChildProcess;
let output = "";

async function until(pattern: RegExp, ms = 10_000): Promise<void> {
	const deadline = Date.now() + ms;
	while (!pattern.test(output)) {
		if (Date.now() > deadline) throw new Error(`REPL never printed ${pattern}; it printed:\n${output}`);
		await new Promise(r => setTimeout(r, 50));
	}
}

beforeAll(async () => {
	euNode = await startRegionNode({
		region: loadRegions().find(r => r.id === "eu-central")!,
		transport: "nats",
		services: ["sv-config"],
		stores: { sql: "sqlite::memory:", keyPrefix: "repl:" },
		env,
		overrides: { logger: false }
	});
	repl = spawn(process.execPath, ["regions/launch/repl.ts", "--region", "cn-east"], { env, stdio: ["pipe", "pipe", "pipe"] });
	repl.stdout!.on("data", d => (output += d));
	repl.stderr!.on("data", d => (output += d));
	await until(/cn-east \$/);
});

afterAll(async () => {
	repl?.kill("SIGKILL");
	await euNode?.stop();
});

describe("npm run repl", () => {
	it("lists the regions with the project's own command", async () => {
		repl.stdin!.write("region list\n");
		await until(/eu-central\s+Europe Central\s+countries=30 pinned=27/);
		expect(output).toMatch(/cn-east\s+China East .*\(this REPL\)/);
	});

	it("reaches another region's nodes through a link", async () => {
		repl.stdin!.write("region nodes eu-central\n");
		await until(new RegExp(`eu-central ${euNode.broker.nodeID}\\s+services=sv-config`));
	});

	it("explains an unknown sub-command instead of failing", async () => {
		repl.stdin!.write("region teleport\n");
		await until(/unknown sub-command "teleport"; try: region list/);
	});

	it("quits cleanly", async () => {
		const exited = once(repl, "exit");
		repl.stdin!.write("quit\n");
		const [code] = await exited;
		expect(code).toBe(0);
	});
});
