import { join } from "node:path";
import { ServiceBroker } from "moleculer";
import { regionNamespace } from "../../app/broker.config.ts";
import { RegionLinks } from "../../regions/links.ts";
import { startEdgeTopology } from "../harness/edge-topology.ts";
import { REAL, runId } from "../harness/real-servers.ts";
import type { Figures } from "./measure.ts";
import { IN_FLIGHT, measure, READY_TIMEOUT_MS, round, SEQUENTIAL_CALLS, startServer, THROUGHPUT_MS, table, withCleanups } from "./measure.ts";
import { benchBrokerOptions, benchEnv, echoSchema } from "./transport-server.ts";

/**
 * `npm run bench:transport`: the cost of one Moleculer call made locally, over NATS between two
 * processes, and across a supercluster gateway through a region link. Ends with one JSON line.
 */

const SERVER_SCRIPT = join(import.meta.dirname, "transport-server.ts");
const PARAMS = { hello: "edge" };

function benchLocal(): Promise<Figures> {
	return withCleanups(async cleanups => {
		const broker = new ServiceBroker({ ...benchBrokerOptions("cn-east", "embedded", benchEnv()), transporter: null });
		broker.createService(echoSchema);
		await broker.start();
		cleanups.push(() => broker.stop());
		return measure(() => broker.call("echo.echo", PARAMS));
	});
}

function benchNats(): Promise<Figures> {
	return withCleanups(async cleanups => {
		// Its own namespace, so it never meets other brokers on the shared server.
		const namespacePrefix = `bench-${runId()}-`;
		await startServer(cleanups, SERVER_SCRIPT, ["cn-east", REAL.nats, namespacePrefix]);
		const broker = new ServiceBroker(benchBrokerOptions("cn-east", "nats", benchEnv(REAL.nats, namespacePrefix)));
		await broker.start();
		cleanups.push(() => broker.stop());
		await broker.waitForServices("echo", READY_TIMEOUT_MS, 50);
		return measure(() => broker.call("echo.echo", PARAMS));
	});
}

function benchGateway(): Promise<Figures> {
	return withCleanups(async cleanups => {
		const cluster = await startEdgeTopology(["cn-east", "eu-central"]);
		cleanups.push(cluster.stop);
		await startServer(cleanups, SERVER_SCRIPT, ["eu-central", cluster.urls["eu-central"]!]);
		// Links made as app/node.ts makes them, from a cn-east broker on cn-east's server: the
		// link joins eu-central's namespace there, and its calls cross the gateway.
		const env = benchEnv(cluster.urls["cn-east"]);
		const base = benchBrokerOptions("cn-east", "nats", env);
		const links = new RegionLinks(target => ({
			...base,
			namespace: regionNamespace(target, env),
			nodeID: `${base.nodeID}-link-${target}`
		}));
		cleanups.push(() => links.stop());
		return measure(() => links.call("eu-central", "echo.echo", PARAMS));
	});
}

async function main(): Promise<void> {
	console.log(`transport bench: ${THROUGHPUT_MS / 1000} s at ${IN_FLIGHT} in flight, then ${SEQUENTIAL_CALLS} sequential calls, per case\n`);
	const local = await benchLocal();
	const nats = await benchNats();
	const gateway = await benchGateway();

	const ratios = {
		natsOverLocalThroughput: nats.callsPerSec / local.callsPerSec,
		natsOverLocalP50: nats.p50Ms / local.p50Ms,
		gatewayOverNatsThroughput: gateway.callsPerSec / nats.callsPerSec,
		gatewayOverNatsP50: gateway.p50Ms / nats.p50Ms
	};
	console.log(table({ local, nats, gateway }));
	console.log(
		`\nnats/local:   throughput x${ratios.natsOverLocalThroughput.toFixed(3)}, p50 x${ratios.natsOverLocalP50.toFixed(1)}` +
			`\ngateway/nats: throughput x${ratios.gatewayOverNatsThroughput.toFixed(3)}, p50 x${ratios.gatewayOverNatsP50.toFixed(2)}\n`
	);

	const figures = (f: Figures) => ({ callsPerSec: Math.round(f.callsPerSec), p50Ms: round(f.p50Ms, 4), p99Ms: round(f.p99Ms, 4) });
	console.log(
		JSON.stringify({
			local: figures(local),
			nats: figures(nats),
			gateway: figures(gateway),
			ratios: Object.fromEntries(Object.entries(ratios).map(([k, v]) => [k, round(v, 4)]))
		})
	);
}

main().catch(err => {
	console.error(err);
	process.exitCode = 1;
});
