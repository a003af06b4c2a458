import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NatsKvDirectoryStore } from "../../../../regions/directory/nats-kv-store.ts";
import { openNatsKvDirectory } from "../../../../regions/directory/nats-kv-store.ts";
import { GlobalProbe } from "../../../../regions/runtime/global-probe.ts";
import { freePort } from "../../../harness/free-port.ts";
import { within } from "../../../harness/waiting.ts";

/** The probe on the real NATS KV store, whose one nats-server (the origin) the test stops and starts again. */
const PROBE_MS = 100;
const PROBE_TIMEOUT_MS = 500;
let port: number;
let dataDir: string;
let server: ChildProcess | undefined;
let store: NatsKvDirectoryStore;
let probe: GlobalProbe;

async function startServer(): Promise<void> {
	server = spawn("nats-server", ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", dataDir], { stdio: "ignore" });
	await within(
		() =>
			new Promise<boolean>(resolve => {
				const socket = connect(port, "127.0.0.1", () => {
					socket.end();
					resolve(true);
				});
				socket.once("error", () => resolve(false));
			}),
		10_000
	);
}

async function stopServer(): Promise<void> {
	const exited = once(server!, "exit");
	server!.kill("SIGKILL");
	await exited;
	server = undefined;
}

beforeAll(async () => {
	port = await freePort();
	dataDir = await mkdtemp(join(tmpdir(), "global-probe-nats-"));
	await startServer();
	store = await openNatsKvDirectory({ servers: `nats://127.0.0.1:${port}`, bucket: "global-probe", timeoutMs: 1000 });
	probe = new GlobalProbe({ store, intervalMs: PROBE_MS, timeoutMs: PROBE_TIMEOUT_MS });
	probe.start();
}, 30_000);

afterAll(async () => {
	probe?.stop();
	await store?.close();
	if (server) await stopServer();
	await rm(dataDir, { recursive: true, force: true });
});

describe("global operations probe on the NATS KV directory", () => {
	it("turns unavailable within its bound of the origin's server going away, and available once it is back", async () => {
		await within(() => probe.state.status === "available", 5000);
		await stopServer();
		expect(await within(() => probe.state.status === "unavailable", 5000)).toBeLessThan(PROBE_MS * 1.2 + PROBE_TIMEOUT_MS + 300);
		// It stays so while the server is away: no answer from a copy, no flapping.
		await new Promise(r => setTimeout(r, PROBE_MS * 5));
		expect(probe.state.status).toBe("unavailable");

		await startServer();
		await within(() => probe.state.status === "available", 15_000);
	}, 40_000);
});
