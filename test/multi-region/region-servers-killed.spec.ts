import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EdgeTopology } from "../harness/edge-topology.ts";
import { startEdgeTopology } from "../harness/edge-topology.ts";
import {
	COUNTRY,
	expectRetryableRefusal,
	GLOBAL_NOTICE_BOUND_MS,
	LauncherRegions,
	OTHER_CN_EAST_COUNTRY,
	READY_BOUND_MS
} from "../harness/launcher-regions.ts";
import { timed, within } from "../harness/waiting.ts";

const REGIONS = ["cn-east", "ap-south", "eu-central"];
const ALONE = "cn-east";
const OTHERS = REGIONS.filter(r => r !== ALONE);

/**
 * The other way a region ends up alone (region-cutoff.spec.ts has the cut links): every other
 * region's servers, edge and hub, are SIGKILLed. The region's `npm run region` launcher serves
 * its users over HTTP, restarts ready within 10 s, refuses global operations fast, and recovers
 * with no manual step once the servers are back.
 */
describe("a region whose peers' servers are all killed, on the edge topology with one launcher per region", () => {
	let topology: EdgeTopology;
	let regions: LauncherRegions;

	beforeAll(async () => {
		topology = await startEdgeTopology(REGIONS);
		regions = new LauncherRegions(topology, REGIONS);
		console.log(`setup: ${await regions.start()}`);
	}, 150_000);

	afterAll(async () => {
		await regions?.stop();
		await topology?.stop();
	});

	it("serves its users over HTTP, restarts ready within 10 s, refuses registration fast, and recovers when the servers return", async () => {
		for (const region of OTHERS) await topology.kill(region);
		const noticed = await within(regions.globalIs(ALONE, "unavailable"), GLOBAL_NOTICE_BOUND_MS);
		console.log(`killed: ${ALONE}'s /readyz says global operations unavailable ${noticed} ms after the other regions' servers died`);
		const own = regions.usersOf(ALONE)[0]!;
		const token = await regions.serveOwnUser(ALONE, own, OTHER_CN_EAST_COUNTRY);
		expectRetryableRefusal("killed: registration", await timed(regions.register(ALONE)));

		const { readyMs, global, unavailableMs } = await regions.restartCutOff(ALONE, token);
		console.log(
			`killed: ${ALONE}'s launcher ready ${readyMs} ms after its restart (global "${global}" then), saying global "unavailable" at ${unavailableMs} ms; bound ${READY_BOUND_MS} ms`
		);
		expect(readyMs).toBeLessThan(READY_BOUND_MS);
		expect(unavailableMs).toBeLessThan(READY_BOUND_MS);
		await regions.serveOwnUser(ALONE, own, COUNTRY[ALONE]!);
		expectRetryableRefusal("killed, after the restart: registration", await timed(regions.register(ALONE)));

		for (const region of OTHERS) await topology.restart(region);
		const back = await within(regions.globalIs(ALONE, "available"), 20_000);
		const served = await regions.untilEveryHomeServed(REGIONS, 30_000);
		console.log(`killed: global operations available ${back} ms after the servers returned; every gateway served every home ${served} ms later`);
		// The servers back may still elect the origin's leader; meanwhile registrations are refused (503, retryable).
		const after = await regions.registerRetrying(ALONE, 30_000);
		console.log(`killed: a registration in ${ALONE} succeeded after ${after.took} ms of retries; refusals: ${JSON.stringify([...after.refusals])}`);
	}, 110_000);
});
