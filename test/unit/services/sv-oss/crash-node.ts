import { join } from "node:path";
import type { RegionNode } from "../../../../app/node.ts";
import { startRegionNode, storeSettings } from "../../../../app/node.ts";
import { openSqliteDirectory } from "../../../../regions/directory/sqlite-store.ts";
import { loadRegions } from "../../../../regions/loader.ts";

/** cn-east embedded on the data folder `dir` (its directory there too), as the crash test starts it before and after the kill. */
export async function startOnFolder(dir: string, blindIndexKeyHex: string, env: NodeJS.ProcessEnv): Promise<{ node: RegionNode; stop(): Promise<void> }> {
	const regions = loadRegions();
	const region = regions.find(r => r.id === "cn-east")!;
	const directory = await openSqliteDirectory(join(dir, "directory.sqlite"));
	const node = await startRegionNode({
		region,
		regions,
		transport: "embedded",
		services: ["sv-region", "sv-oss"],
		stores: storeSettings(region, "embedded", env, { dataDir: dir }),
		directory: { store: directory, blindIndexKey: Buffer.from(blindIndexKeyHex, "hex") },
		env: { ...env, EDGEHOME_METRICS_PORT: "off" },
		overrides: { logger: false }
	});
	return {
		node,
		async stop() {
			await node.stop();
			await directory.close();
		}
	};
}
