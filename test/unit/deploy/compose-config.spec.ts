import { execFile, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadRegions } from "../../../regions/loader.ts";
import { composePath, parseCompose, ROOT } from "./stack-checks.ts";

/**
 * Compose itself reads each region's stack with `config`: the file is valid Compose (schema, merge
 * keys, interpolation), and it refuses to run without each required variable. The stacks are Compose
 * Specification files, read by Compose v2 (`docker compose`, which .ci/run installs); Compose v1 is not
 * accepted as a stand-in.
 */
const REGION_IDS = loadRegions(join(ROOT, "regions", "definitions")).map(r => r.id);

/** The installed Compose v2: the Docker CLI's plugin, else its standalone program. */
function findCompose(): { command: string; args: string[]; version: string } | undefined {
	for (const [command, args] of [
		["docker", ["compose"]],
		["docker-compose", []]
	] as const) {
		const run = spawnSync(command, [...args, "version", "--short"], { encoding: "utf8" });
		const version = run.stdout?.trim() ?? "";
		if (!run.error && run.status === 0 && /^v?2\./.test(version)) return { command, args: [...args], version };
	}
	return undefined;
}

const compose = findCompose();
if (!compose) console.log("compose-config.spec.ts: skipped, Compose v2 (`docker compose`) is not installed (.ci/run installs it)");

/** A value for every `${NAME:?…}` the file requires: folders for the two that name one, a word for the others. */
function requiredVariables(text: string): Record<string, string> {
	const names = [...new Set([...text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*):\?/g)].map(m => m[1]!))];
	return Object.fromEntries(
		names.map(n => [n, n === "EDGEHOME_NATS_CERTS" || n === "EDGEHOME_SECRETS" ? `/srv/edgehome/${n.toLowerCase()}` : `value-of-${n.toLowerCase()}`])
	);
}

/** Four Compose processes start at once, seconds each on a loaded machine. */
const COMPOSE_TIMEOUT_MS = 90_000;

// An empty env file in place of a .env an operator may have left beside the stack.
const scratch = mkdtempSync(join(tmpdir(), "edgehome-compose-"));
const EMPTY_ENV = join(scratch, "empty.env");
writeFileSync(EMPTY_ENV, "");
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** `config` on a stack with exactly `env` (no .env file is read): exit code, output, errors. */
function config(file: string, env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
	const { command, args } = compose!;
	return new Promise(resolve => {
		execFile(
			command,
			[...args, "--env-file", EMPTY_ENV, "-f", file, "config"],
			{ cwd: ROOT, env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env }, encoding: "utf8" },
			(err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr })
		);
	});
}

describe.skipIf(!compose)(`${[compose?.command ?? "compose", ...(compose?.args ?? [])].join(" ")} config (${compose?.version ?? "not installed"})`, () => {
	// Every run starts at once: each takes seconds to start on a loaded machine, and they are independent.
	const runs = Object.fromEntries(
		REGION_IDS.map(id => {
			const file = composePath(id);
			const text = readFileSync(file, "utf8");
			const env = requiredVariables(text);
			return [id, { text, env, ok: compose ? config(file, env) : undefined }];
		})
	);
	// The stacks differ only in region values: one refusal shows the references are required.
	const { EDGEHOME_OPS_TOKEN: _, ...withoutToken } = runs[REGION_IDS[0]!]!.env;
	const refused = compose ? config(composePath(REGION_IDS[0]!), withoutToken) : undefined;

	it.each(REGION_IDS)(
		"accepts the %s stack, and resolves the services and secrets the other checks read",
		async id => {
			const { text, env, ok } = runs[id]!;
			const run = await ok!;
			expect(run.stderr.split("\n").filter(l => /error|invalid|unsupported/i.test(l))).toEqual([]);
			expect(run.code, run.stderr).toBe(0);
			const resolved = parseCompose(run.stdout) as {
				services: Record<string, { environment?: Record<string, string> }>;
				secrets?: Record<string, { file: string }>;
			};
			const ours = parseCompose(text);
			expect(Object.keys(resolved.services).sort()).toEqual(Object.keys(ours.services ?? {}).sort());
			expect(Object.keys(resolved.secrets ?? {}).sort()).toEqual(Object.keys(ours.secrets ?? {}).sort());
			for (const secret of Object.values(resolved.secrets ?? {})) expect(secret.file.startsWith(`${env.EDGEHOME_SECRETS}/`), secret.file).toBe(true);
			expect(resolved.services.core?.environment?.EDGEHOME_OPS_TOKEN).toBe(env.EDGEHOME_OPS_TOKEN);
		},
		COMPOSE_TIMEOUT_MS
	);

	it(
		`refuses the ${REGION_IDS[0]} stack without EDGEHOME_OPS_TOKEN, naming it`,
		async () => {
			const run = await refused!;
			expect(run.code).not.toBe(0);
			expect(run.stderr).toMatch(/set EDGEHOME_OPS_TOKEN/);
		},
		COMPOSE_TIMEOUT_MS
	);
});
