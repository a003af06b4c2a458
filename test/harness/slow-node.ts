/**
 * A region node process for shutdown tests: the region launcher's start and signal path
 * (startRegionNode + exitOnSignal) with one slow action, so calls are surely in flight
 * when the signal lands. Prints "ready" on stdout once started.
 */
import { exitOnSignal } from "../../app/launch/shutdown.ts";
import { startRegionNode } from "../../app/node.ts";
import { loadRegions } from "../../regions/loader.ts";

const region = loadRegions().find(r => r.id === (process.env.SLOW_NODE_REGION ?? "cn-east"))!;
const delayMs = Number(process.env.SLOW_NODE_DELAY_MS ?? 1000);
let started = 0;

const node = await startRegionNode({
	region,
	transport: "nats",
	services: [],
	group: "slow",
	stores: { sql: "sqlite::memory:", keyPrefix: "slow:" },
	schemas: [
		{
			name: "slow",
			actions: {
				work: {
					params: { $$strict: true, n: "number" },
					async handler(ctx: { params: { n: number } }) {
						started++;
						await new Promise(r => setTimeout(r, delayMs));
						return { n: ctx.params.n, done: true };
					}
				},
				started: () => started
			}
		}
	],
	overrides: { logger: false }
});
exitOnSignal(node.stop, msg => process.stderr.write(`${msg}\n`));
process.stdout.write("ready\n");
