import type { ChildProcess } from "node:child_process";
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../../harness/free-port.ts";

/** `npm start -- --memory --repl` as a user runs it, on region files whose ports are free here. */
const TOKEN = "embedded-launcher-spec-ops-token-0123456789";
const ADMIN_PASSWORD = "quartz lantern forty-seven ripple";
const regionsDir = mkdtempSync(join(tmpdir(), "eh-embedded-"));
const ports: Record<string, { www: number; metrics: number }> = {};
let launcher: ChildProcess;
let output = "";
const readiness: { status: number; body: unknown; at: number }[] = [];
let firstLogin = 0;

async function until(pattern: RegExp, ms = 15_000): Promise<void> {
	const deadline = Date.now() + ms;
	while (!pattern.test(output)) {
		if (Date.now() > deadline) throw new Error(`the launcher never printed ${pattern}; it printed:\n${output}`);
		await new Promise(r => setTimeout(r, 50));
	}
}

const ops = (path: string, authorization = `Bearer ${TOKEN}`) => fetch(`http://127.0.0.1:${ports["cn-east"]!.metrics}${path}`, { headers: { authorization } });
const login = () =>
	fetch(`http://127.0.0.1:${ports["cn-east"]!.www}/api/v1/auth/login`, {
		method: "POST",
		headers: { "content-type": "application/json" },
		body: JSON.stringify({ login: "admin", password: ADMIN_PASSWORD })
	});

beforeAll(async () => {
	for (const file of readdirSync("regions/definitions")) {
		const region = JSON.parse(readFileSync(join("regions/definitions", file), "utf8"));
		for (const key of Object.keys(region.ports)) region.ports[key] = await freePort();
		ports[region.id] = region.ports;
		writeFileSync(join(regionsDir, file), JSON.stringify(region));
	}
	launcher = spawn(process.execPath, ["app/launch/embedded.ts", "--memory", "--repl"], {
		env: { ...process.env, EDGEHOME_REGIONS_DIR: regionsDir, EDGEHOME_OPS_TOKEN: TOKEN, ADMIN_PASSWORD, EDGEHOME_LOG_FORMAT: "json" },
		stdio: ["pipe", "pipe", "pipe"]
	});
	launcher.stdout!.on("data", d => (output += d));
	launcher.stderr!.on("data", d => (output += d));
	// Probe readiness as a load balancer would, and log in the moment it says ready.
	const deadline = Date.now() + 60_000;
	for (;;) {
		if (Date.now() > deadline || launcher.exitCode !== null) throw new Error(`never ready; the launcher printed:\n${output}`);
		const res = await ops("/readyz").catch(() => undefined);
		if (res) readiness.push({ status: res.status, body: await res.json(), at: Date.now() });
		if (res?.status === 200) break;
		await new Promise(r => setTimeout(r, 10));
	}
	firstLogin = (await login()).status;
	await until(/cn-east \$/);
}, 90_000);

afterAll(() => {
	launcher?.kill("SIGKILL");
	rmSync(regionsDir, { recursive: true, force: true });
});

describe("npm start: readiness", () => {
	it("answers ready only once the first administrator can log in", () => {
		expect(readiness.some(r => r.status === 503 && (r.body as { checks: { startup: string } }).checks.startup === "pending")).toBe(true);
		expect(firstLogin).toBe(200);
	});

	it("keeps /metrics and /readyz from anyone without the token, and serves promtool-clean metrics", async () => {
		expect((await ops("/metrics", "")).status).toBe(401);
		expect((await ops("/readyz", "Bearer not-the-token")).status).toBe(401);
		const text = await (await ops("/metrics")).text();
		expect(text).toMatch(/edgehome_http_requests_total\{region="cn-east",gateway="api-www",route="POST \/api\/v1\/auth\/login",code="200"\} 1/);
		const check = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
		expect(`${check.stdout}${check.stderr}`).toBe("");
		expect(check.status).toBe(0);
	});
});

describe("npm start -- --repl: a console on the embedded regions", () => {
	const command = async (line: string, expected: RegExp) => {
		output = "";
		launcher.stdin!.write(`${line}\n`);
		await until(expected);
	};

	it("sees the cluster: sv-region answers, every region is up", async () => {
		// Each region probes the others from its start on: the last one started is up within a probe or two.
		for (let tries = 0; !/ap-south\s+up[\s\S]*eu-central\s+up/.test(output); tries++) {
			if (tries === 20) throw new Error(`regions not all up:\n${output}`);
			await command("region status", /eu-central\s+\w+\s+since/);
			await new Promise(r => setTimeout(r, 300));
		}
		await command("call sv-region.regions", /id: .*'eu-central'/);
		expect(output).not.toMatch(/is not found/);
	});

	it("names the field a command got wrong", async () => {
		await command("region move not-a-user-id ap-south", /error: invalid userId: /);
		await command("admin create x", /error: invalid username: /);
	});

	it("lists metrics", async () => {
		await command("metrics -f edgehome_moves_total", /edgehome_moves_total\s*│\s*counter\s*│\s*\{outcome: moved\}\s*│\s*0/);
	});

	it("quits, stopping every region, exit code 0", async () => {
		const exited = once(launcher, "exit");
		launcher.stdin!.write("quit\n");
		const [code] = await exited;
		expect(code).toBe(0);
		await expect(fetch(`http://127.0.0.1:${ports["eu-central"]!.www}/healthz`)).rejects.toThrow();
	});
});
