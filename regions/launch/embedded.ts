import { loadRegions, RegionConfigError } from "../loader.ts";
import { startRegionNode, storeSettings } from "../node.ts";
import type { RegionNode } from "../node.ts";
import { launcherArgs } from "./args.ts";
import { banner } from "./banner.ts";
import { exitOnSignal, fail } from "./shutdown.ts";

/**
 * `npm start`: every region in one process over the in-process transporter,
 * SQLite under ./data (or in memory with --memory).
 */
async function main(): Promise<void> {
	const args = launcherArgs({ memory: { type: "boolean", default: false }, data: { type: "string", default: "data" } });
	const started = performance.now();
	const regions = loadRegions();
	const nodes: RegionNode[] = [];
	const stopAll = () => Promise.all(nodes.map(n => n.stop())).then(() => undefined);
	exitOnSignal(stopAll);
	try {
		for (const region of regions) {
			const stores = storeSettings(region, "embedded", process.env, { dataDir: args.data as string, memory: args.memory as boolean });
			nodes.push(await startRegionNode({ region, transport: "embedded", stores }));
		}
	} catch (err) {
		await stopAll().catch(() => undefined);
		throw err;
	}
	console.log(banner(nodes, performance.now() - started, args.memory ? "in memory" : `${args.data}/<region>.sqlite`));
}

main().catch(err => fail(err instanceof Error ? err.message : String(err), err instanceof RegionConfigError ? 2 : 1));
