import type { ChildProcess } from "node:child_process";
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "./free-port.ts";

const NATS_SERVER = process.env.EDGEHOME_TEST_NATS_SERVER ?? "nats-server";
export const DEPLOY_NATS = join(import.meta.dirname, "..", "..", "deploy", "nats");

/** The CA and per-region server certificates, made by the shipped deploy/nats/make-certs.sh. */
export function makeCertificates(dir: string, regions: string[]): void {
	const run = spawnSync("sh", [join(DEPLOY_NATS, "make-certs.sh"), dir, ...regions], { encoding: "utf8" });
	if (run.status !== 0) throw new Error(`make-certs.sh failed: ${run.stderr}`);
}

/**
 * The passwords deploy/nats/auth.conf reads from the server's environment, made as deploy/README.md
 * says: NATS parses a variable's value as a config value, so one starting with a digit can be taken
 * for a number; a letter first keeps it a string.
 */
export function natsPasswords(): { NATS_SERVICE_PASSWORD: string; NATS_OPS_PASSWORD: string } {
	return { NATS_SERVICE_PASSWORD: `p${randomBytes(24).toString("hex")}`, NATS_OPS_PASSWORD: `p${randomBytes(24).toString("hex")}` };
}

/**
 * A server's working directory as in the deploy stacks: the shipped auth.conf beside the config,
 * the region's certificates in certs/.
 */
export function serverDir(root: string, region: string, certs: string): string {
	const dir = join(root, region);
	mkdirSync(dir, { recursive: true });
	copyFileSync(join(DEPLOY_NATS, "auth.conf"), join(dir, "auth.conf"));
	cpSync(join(certs, region), join(dir, "certs"), { recursive: true });
	return dir;
}

export interface SecureNats {
	url: string;
	/** The CA certificate clients trust. */
	caFile: string;
	passwords: ReturnType<typeof natsPasswords>;
	stop(): Promise<void>;
}

/** One NATS server with the shipped client TLS and users (deploy/nats/auth.conf), and JetStream. */
export async function startSecureNats(): Promise<SecureNats> {
	const root = mkdtempSync(join(tmpdir(), "edgehome-secure-nats-"));
	makeCertificates(join(root, "pki"), ["cn-east"]);
	const dir = serverDir(root, "cn-east", join(root, "pki"));
	const [port, http] = [await freePort(), await freePort()];
	writeFileSync(
		join(dir, "server.conf"),
		[
			`server_name: "secure-test"`,
			`listen: "127.0.0.1:${port}"`,
			`http: "127.0.0.1:${http}"`,
			`include "auth.conf"`,
			`jetstream { store_dir: "${join(dir, "js")}" }`,
			""
		].join("\n")
	);
	const passwords = natsPasswords();
	const proc: ChildProcess = spawn(NATS_SERVER, ["-c", join(dir, "server.conf")], { cwd: dir, env: { ...process.env, ...passwords }, stdio: "ignore" });
	const stop = async () => {
		if (proc.exitCode === null) {
			proc.kill("SIGKILL");
			await new Promise(r => proc.once("exit", r));
		}
		rmSync(root, { recursive: true, force: true });
	};
	for (let i = 0; ; i++) {
		const ok = await fetch(`http://127.0.0.1:${http}/healthz`).then(
			r => r.ok,
			() => false
		);
		if (ok) break;
		if (i > 100 || proc.exitCode !== null) {
			await stop();
			throw new Error("the secure NATS server did not start");
		}
		await sleep(100);
	}
	return { url: `nats://127.0.0.1:${port}`, caFile: join(dir, "certs", "ca.crt"), passwords, stop };
}
