import { ServiceBroker } from "moleculer";
import { RegionLinks } from "../../regions/links.ts";
import { findRegion, loadRegions, RegionConfigError } from "../../regions/loader.ts";
import { checkNatsLogin, natsCredentials } from "../../regions/runtime/bus-credentials.ts";
import { envString } from "../../regions/runtime/env.ts";
import { attachRegionRuntime } from "../../regions/runtime/region-runtime.ts";
import { brokerConfig, regionNamespace } from "../broker.config.ts";
import { openConsole } from "../repl/console.ts";
import { launcherArgs } from "./args.ts";
import { waitForServer } from "./preflight.ts";
import { fail, isConfigError } from "./shutdown.ts";

/** `npm run repl -- --region <id>`: moleculer-repl on a service-less node joined to that region. */
async function main(): Promise<void> {
	const args = launcherArgs({ region: { type: "string" } });
	if (!args.region) throw new RegionConfigError("--region", "id", "is required, e.g. --region cn-east");
	const regions = loadRegions();
	const region = findRegion(regions, args.region as string);
	// The REPL is a guest: no metrics port, no cache of its own, quiet unless asked, and no traces
	// (it runs beside a service group with that group's environment, collector URL included).
	const env = {
		EDGEHOME_LOG_LEVEL: "warn",
		...process.env,
		EDGEHOME_METRICS_PORT: "off",
		EDGEHOME_CACHER: "off",
		EDGEHOME_OTLP_URL: "",
		OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "",
		OTEL_EXPORTER_OTLP_ENDPOINT: ""
	};
	const natsUrl = envString(env, "EDGEHOME_NATS_URL", region.endpoints.nats);
	await waitForServer("NATS", natsUrl, { attempts: 3, delayS: 1 });
	// The same login as a service node (EDGEHOME_NATS_USER / _PASSWORD / _CA; the `ops` user in the
	// deploy stacks), and EDGEHOME_CAPABILITY_KEYS for restricted actions such as `admin create`'s grant.
	await checkNatsLogin(natsUrl, natsCredentials(env));
	// Metrics on without a port: the `metrics` command lists what this console's own calls measured.
	const options = { ...brokerConfig({ region, group: "repl", transport: "nats", env }), metrics: { enabled: true, collectProcessMetrics: false } };
	const print = (line: string) => console.log(line);
	const broker = new ServiceBroker(options);
	const links = new RegionLinks(target => ({ ...options, namespace: regionNamespace(target, env), nodeID: `${broker.nodeID}-link-${target}` }));
	attachRegionRuntime(broker, { region, regions, links });
	broker.localBus.on("$broker.stopped", () => void links.stop());
	await broker.start();
	openConsole(broker, { regions, print });
	setTimeout(() => {
		if (!broker.registry.getNodeList({ onlyAvailable: true }).some(n => !n.local && n.metadata?.region === region.id))
			print(
				`no node of ${region.id} is on this NATS (namespace ${broker.namespace}). \`npm start\` keeps its regions inside its own process: run \`npm start -- --repl\` for a console on them.`
			);
	}, NODE_DISCOVERY_MS).unref();
}

/** Nodes of the region announce themselves within a heartbeat or two of the console's arrival. */
const NODE_DISCOVERY_MS = 3000;

main().catch(err => fail(err instanceof Error ? err.message : String(err), isConfigError(err) ? 2 : 1));
