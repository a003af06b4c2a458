import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { startServices } from "../harness/embedded.ts";
import type { GatewayName } from "../harness/gateways.ts";
import { GATEWAYS, gatewaySchemas, gatewayUrl } from "../harness/gateways.ts";

/**
 * `npm run lint:openapi`: the gateways' OpenAPI documents through Redocly (recommended rules,
 * redocly.yaml) and Spectral (spectral:oas, .spectral.yaml). With URLs it lints those documents
 * (e.g. a running `npm start`); without, it starts the four gateways in memory and fetches theirs.
 * Exit code 1 when either tool finds an error; warnings are printed and do not fail.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const require = createRequire(import.meta.url);

/** Both tools stay offline: no telemetry, no update check, rulesets from the installed packages. */
const OFFLINE_ENV = { REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true", NO_UPDATE_NOTIFIER: "1", SCARF_ANALYTICS: "false", DO_NOT_TRACK: "1" };

export interface LintRun {
	tool: "redocly" | "spectral";
	/** 0: no errors (warnings may have been printed). */
	exitCode: number;
	output: string;
}

/** A package's command-line entry, run on this process's Node (24) rather than whatever `node` is first on the PATH. */
function binOf(pkg: string, name: string): string {
	const manifest = require(`${pkg}/package.json`) as { bin: Record<string, string> };
	return join(dirname(require.resolve(`${pkg}/package.json`)), manifest.bin[name]!);
}

function run(tool: LintRun["tool"], args: string[]): LintRun {
	const bin = tool === "redocly" ? binOf("@redocly/cli", "redocly") : binOf("@stoplight/spectral-cli", "spectral");
	const done = spawnSync(process.execPath, [bin, ...args], { cwd: ROOT, encoding: "utf8", env: { ...process.env, ...OFFLINE_ENV }, timeout: 120_000 });
	return { tool, exitCode: done.status ?? 1, output: `${done.stdout}${done.stderr}${done.error ? String(done.error) : ""}` };
}

/** Both linters over the documents (files or URLs). */
export function lintDocuments(documents: readonly string[]): LintRun[] {
	return [
		run("redocly", ["lint", "--config", join(ROOT, "redocly.yaml"), "--format", "stylish", ...documents]),
		run("spectral", ["lint", "--ruleset", join(ROOT, ".spectral.yaml"), "--fail-severity", "error", "--format", "stylish", ...documents])
	];
}

/** The four gateways' documents as they serve them, written into `dir`: one file per gateway. */
export async function dumpGatewayDocuments(dir: string): Promise<string[]> {
	const started = await startServices(gatewaySchemas());
	try {
		const files: string[] = [];
		for (const name of Object.keys(GATEWAYS) as GatewayName[]) {
			const res = await fetch(`${gatewayUrl(started.broker, name)}/api/v1/openapi.json`);
			if (!res.ok) throw new Error(`${name} answered ${res.status} for its OpenAPI document`);
			const file = join(dir, `${name}.openapi.json`);
			writeFileSync(file, await res.text());
			files.push(file);
		}
		return files;
	} finally {
		await started.stop();
	}
}

async function main(urls: string[]): Promise<number> {
	const dir = mkdtempSync(join(tmpdir(), "edgehome-openapi-"));
	try {
		const documents = urls.length > 0 ? urls : await dumpGatewayDocuments(dir);
		let failed = false;
		for (const result of lintDocuments(documents)) {
			process.stdout.write(`\n== ${result.tool} ==\n${result.output}\n`);
			failed ||= result.exitCode !== 0;
		}
		process.stdout.write(failed ? "\nOpenAPI lint: errors found\n" : "\nOpenAPI lint: no errors\n");
		return failed ? 1 : 0;
	} finally {
		rmSync(dir, { recursive: true, force: true });
	}
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
