import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "./free-port.ts";

/** A nats-server with JetStream of a test's own, on a free loopback port, that the test can kill and start again on the same storage. */
export interface OwnJetStream {
	readonly url: string;
	/** SIGKILLs the server, as a crash would. */
	kill(): Promise<void>;
	/** Starts it again on the same port and JetStream folder. */
	start(): Promise<void>;
	/** Kills it and removes its folder. */
	stop(): Promise<void>;
}

export async function startOwnJetStream(): Promise<OwnJetStream> {
	const port = await freePort();
	const dir = mkdtempSync(join(tmpdir(), "edgehome-channels-js-"));
	let proc: ChildProcess | undefined;
	const killNow = () => proc?.kill("SIGKILL");
	process.once("exit", killNow);
	const server: OwnJetStream = {
		url: `nats://127.0.0.1:${port}`,
		async kill() {
			if (!proc || proc.exitCode !== null) return;
			const exited = new Promise(resolve => proc!.once("exit", resolve));
			proc.kill("SIGKILL");
			await exited;
		},
		async start() {
			proc = spawn(process.env.EDGEHOME_TEST_NATS_SERVER ?? "nats-server", ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", dir], {
				stdio: "ignore"
			});
			const deadline = Date.now() + 10_000;
			while (!(await listening(port))) {
				if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`nats-server on port ${port} did not start`);
				await sleep(50);
			}
		},
		async stop() {
			await server.kill();
			process.off("exit", killNow);
			rmSync(dir, { recursive: true, force: true });
		}
	};
	await server.start();
	return server;
}

function listening(port: number): Promise<boolean> {
	return new Promise(resolve => {
		const socket = connect(port, "127.0.0.1");
		socket.once("connect", () => {
			socket.destroy();
			resolve(true);
		});
		socket.once("error", () => resolve(false));
	});
}
