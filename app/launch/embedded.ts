import { join } from "node:path";
import { openSqliteDirectory } from "../../regions/directory/sqlite-store.ts";
import { loadRegions } from "../../regions/loader.ts";
import { OPS_TOKEN_ENV } from "../../regions/runtime/ops-token.ts";
import { embeddedBlindIndexKey, embeddedOpsToken, embeddedPiiKeys } from "../../regions/runtime/secrets.ts";
import { holdReadiness } from "../../regions/runtime/startup.ts";
import { startProcessTracing } from "../../regions/runtime/tracing/process-sdk.ts";
import type { RegionNode } from "../node.ts";
import { startRegionNode, storeSettings } from "../node.ts";
import { openConsole } from "../repl/console.ts";
import { launcherArgs } from "./args.ts";
import { banner } from "./banner.ts";
import type { AdminOutcome } from "./first-admin.ts";
import { adminPasswordFromEnv, createAdmin, FIRST_ADMIN } from "./first-admin.ts";
import { keepDataPrivate } from "./private-data.ts";
import { exitOnSignal, fail, isConfigError } from "./shutdown.ts";

/**
 * `npm start`: every region in one process over the in-process transporter,
 * SQLite under ./data (or in memory with --memory); `--repl` opens the console on the first
 * administrator's region (the in-process bus cannot be joined from another process).
 */
async function main(): Promise<void> {
	const args = launcherArgs({
		memory: { type: "boolean", default: false },
		data: { type: "string", default: "data" },
		repl: { type: "boolean", default: false }
	});
	const started = performance.now();
	const regions = loadRegions();
	const dataDir = args.data as string;
	const memory = args.memory as boolean;
	// With a console on this terminal, log lines would bury the prompt: warnings and errors only, unless asked.
	if (args.repl) process.env.EDGEHOME_LOG_LEVEL ??= "warn";
	if (!memory) keepDataPrivate(dataDir);
	// Embedded needs no configuration: keys are made once and kept beside the data.
	process.env.EDGEHOME_PII_KEYS = embeddedPiiKeys(process.env, memory ? undefined : join(dataDir, "pii-keys"));
	const opsTokenFile = memory ? undefined : join(dataDir, "ops-token");
	process.env[OPS_TOKEN_ENV] = embeddedOpsToken(process.env, opsTokenFile);
	// Not ready until the first administrator can log in.
	const releaseReadiness = holdReadiness();
	// One directory for the whole process: every embedded region reads the same global view.
	const store = await openSqliteDirectory(memory ? ":memory:" : join(dataDir, "directory.sqlite"));
	const directory = { store, blindIndexKey: embeddedBlindIndexKey(process.env, memory ? undefined : join(dataDir, "blind-index.key")) };
	// One OTel SDK for every region of the process, before their brokers: each span names its region.
	const tracing = startProcessTracing(process.env, { regions: regions.map(r => r.id), group: "all" });
	const nodes: RegionNode[] = [];
	const stopAll = async () => {
		await Promise.all(nodes.map(n => n.stop()));
		await store.close();
		await tracing?.stop();
	};
	exitOnSignal(stopAll);
	let admin: AdminOutcome;
	try {
		for (const region of regions) {
			const stores = storeSettings(region, "embedded", process.env, { dataDir, memory });
			nodes.push(await startRegionNode({ region, regions, transport: "embedded", stores, directory }));
		}
		// A fresh data folder gets its first administrator; an existing one is left as it is.
		admin = await createAdmin((action, params) => adminHome(nodes).broker.call(action, params), FIRST_ADMIN.username, adminPasswordFromEnv(process.env));
	} catch (err) {
		await stopAll().catch(() => undefined);
		throw err;
	}
	releaseReadiness();
	const ops = opsTokenFile ? { tokenFile: opsTokenFile } : { token: process.env[OPS_TOKEN_ENV]! };
	console.log(
		banner(
			nodes,
			performance.now() - started,
			memory ? "in memory" : `${dataDir}/<region>.sqlite`,
			ops,
			admin.created ? admin : undefined,
			args.repl as boolean
		)
	);
	if (args.repl) openConsole(adminHome(nodes).broker, { regions, print: line => console.log(line) }, stopAll);
}

function adminHome(nodes: RegionNode[]): RegionNode {
	const home = nodes.find(n => n.region.id === FIRST_ADMIN.region);
	if (!home) throw new Error(`region ${FIRST_ADMIN.region}, home of the first administrator, is not defined`);
	return home;
}

main().catch(err => fail(err instanceof Error ? err.message : String(err), isConfigError(err) ? 2 : 1));
