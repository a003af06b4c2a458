import { ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { brokerConfig } from "../../app/broker.config.ts";
import { findRegion, loadRegions } from "../../regions/loader.ts";
import type { EdgeTopology } from "../harness/edge-topology.ts";
import { startEdgeTopology } from "../harness/edge-topology.ts";
import { http } from "../harness/gateways.ts";
import {
	COUNTRY,
	expectRetryableRefusal,
	GLOBAL_FAILURE_BOUND_MS,
	GLOBAL_NOTICE_BOUND_MS,
	LauncherRegions,
	OTHER_CN_EAST_COUNTRY,
	READY_BOUND_MS
} from "../harness/launcher-regions.ts";
import type { RegionNetwork } from "../harness/netns.ts";
import { createRegionNetwork, netnsAvailable } from "../harness/netns.ts";
import { failureOf, timed, within } from "../harness/waiting.ts";

const REGIONS = ["cn-east", "ap-south", "eu-central"];
const ALONE = "cn-east";
/** The hub's two other servers elect new leaders for what the cut-off one led; registrations elsewhere resume within this. */
const REGISTRATION_RESUME_BOUND_MS = 30_000;
/**
 * A mirror whose source stalled, or that diverged (it copied writes of the origin's cut-off leader that the other
 * replicas never took: seen about once in six runs), is made anew by the mirror watchdog, then copies the origin: either is judged
 * 15–25 s after the watchdog (checking every 2 s) first sees the origin ahead, which may be after /readyz already
 * says global operations are available; the new mirror then copies. 45 s, then 60 s, were once too short in CI (the
 * mirror still short of the user registered during the cut, on a loaded machine; the failure prints the origin as the
 * region reaches it too).
 */
const MIRROR_CATCH_UP_BOUND_MS = 90_000;
/** Hub servers that meet again re-elect their leaders (raft terms moved on while apart). */
const HEAL_BOUND_MS = 30_000;
/** Every gateway serving every user at the home it had, once the mirror caught up. */
const SERVED_AFTER_HEAL_BOUND_MS = 20_000;

const available = await netnsAvailable();
if (!available) console.log("region-cutoff.spec.ts skipped: network namespaces are not available here (they need root and iproute2)");

/**
 * A region cut off from every other region on the production topology (deploy/README.md,
 * "Topology"): each region a network namespace holding its edge server (own JetStream domain)
 * and its hub server (directory origin, three replicas); inter-region traffic crosses a bridge
 * whose port to the region the test takes down, every server staying alive. Each region runs
 * `npm run region` in the root namespace on real MariaDB and Redis, reaching its own edge server
 * only, and the test uses it as a client would: through its api-app gateway and its /readyz.
 * The variant with the other regions' servers killed is region-servers-killed.spec.ts.
 */
describe.skipIf(!available)("a region cut off from every other region, on real NATS servers in network namespaces", () => {
	let net: RegionNetwork;
	let topology: EdgeTopology;
	let regions: LauncherRegions;
	let cutAt = 0;

	beforeAll(async () => {
		const started = Date.now();
		net = await createRegionNetwork(REGIONS);
		topology = await startEdgeTopology(REGIONS, { spawnPrefix: net.spawnPrefix, hostOf: net.wanAddress, clientHostOf: net.mgmtAddress });
		const servers = Date.now() - started;
		regions = new LauncherRegions(topology, REGIONS);
		console.log(`setup: servers in ${servers} ms, ${await regions.start()}`);
	}, 150_000);

	afterAll(async () => {
		await regions?.stop();
		await topology?.stop();
		await net?.destroy();
	});

	it("cut off: serves its own users over HTTP (login, /me, a profile update, refresh); global operations fail fast with a retryable 503", async () => {
		const own = regions.usersOf(ALONE)[0]!;
		const before = await regions.login(ALONE, own.username);
		expect(before.status, before.text).toBe(200);
		await net.cut(ALONE);
		cutAt = Date.now();
		const noticed = await within(regions.globalIs(ALONE, "unavailable"), GLOBAL_NOTICE_BOUND_MS);
		console.log(`cut: ${ALONE}'s /readyz says global operations unavailable ${noticed} ms after the cut`);
		expect(await regions.readiness(ALONE)).toMatchObject({ status: 200, body: { ready: true, serving: "own-users", global: "unavailable" } });

		// A token issued before the cut still works; a new session does too.
		expect((await http(regions.gateway(ALONE), "GET", "/api/v1/me", { token: before.body.accessToken })).status).toBe(200);
		const served = await timed(regions.serveOwnUser(ALONE, own, OTHER_CN_EAST_COUNTRY));
		if (served.result instanceof Error) throw served.result;
		console.log(`cut: login, /me, profile update, refresh and /me again took ${served.ms} ms`);

		expectRetryableRefusal("cut: registration of a user of this region", await timed(regions.register(ALONE)));
		expectRetryableRefusal("cut: registration of another region's user", await timed(regions.register(ALONE, COUNTRY["ap-south"])), [
			"DIRECTORY_UNAVAILABLE",
			"REGION_UNAVAILABLE"
		]);
		const identity = await timed(
			http(regions.gateway(ALONE), "PATCH", "/api/v1/me", { token: served.result as string, body: { email: `cutoff-${cutAt}@example.com` } })
		);
		expectRetryableRefusal("cut: an identity change (new e-mail)", identity);

		// A move: no route for ordinary clients, so through the region's bus as an operator's tool would.
		const env = {
			EDGEHOME_NATS_URL: topology.urls[ALONE]!,
			EDGEHOME_NAMESPACE_PREFIX: regions.namespacePrefix,
			EDGEHOME_METRICS_PORT: "off",
			EDGEHOME_CACHER: "off"
		};
		const broker = new ServiceBroker({
			...brokerConfig({ region: findRegion(loadRegions(), ALONE), group: "operator", transport: "nats", env }),
			logger: false
		});
		await broker.start();
		try {
			await within(() => broker.registry.getServiceList({ onlyAvailable: true }).some(s => s.name === "sv-region"), 10_000);
			const move = await timed(failureOf(broker.call("sv-region.move", { userId: own.id, to: "ap-south" })));
			const error = move.result as { type: string; code: number; data?: { retryAfter?: number } };
			console.log(`cut: a move failed in ${move.ms} ms with ${error.type}`);
			expect(["DIRECTORY_UNAVAILABLE", "REGION_UNAVAILABLE"]).toContain(error.type);
			expect(error.code).toBe(503);
			expect(error.data?.retryAfter).toBeGreaterThan(0);
			expect(move.ms).toBeLessThan(GLOBAL_FAILURE_BOUND_MS);
		} finally {
			await broker.stop();
		}
	}, 60_000);

	it(
		"the rest of the world goes on: a user registers in another region during the cut, which the cut-off region's mirror cannot learn of",
		async () => {
			// While the hub's other two servers elect new leaders, a registration may be refused (503, retryable): a client retries.
			const sinceCut = Date.now() - cutAt;
			const { registered, took, refusals } = await regions.registerRetrying("ap-south", REGISTRATION_RESUME_BOUND_MS);
			console.log(
				`cut: a registration in ap-south, ${sinceCut} ms after the cut, succeeded after ${took} ms of retries; refusals: ${JSON.stringify([...refusals])}`
			);
			expect(await regions.homeInMirror(ALONE, registered.body.id)).toBeUndefined();
		},
		REGISTRATION_RESUME_BOUND_MS + 10_000
	);

	it("cut off: its node process, SIGKILLed and restarted, is ready within 10 s and serves its users again", async () => {
		const own = regions.usersOf(ALONE)[0]!;
		const token = await regions.serveOwnUser(ALONE, own, COUNTRY[ALONE]!);
		const { readyMs, global, unavailableMs } = await regions.restartCutOff(ALONE, token);
		console.log(
			`cut: ${ALONE}'s launcher ready ${readyMs} ms after its restart (global "${global}" then), saying global "unavailable" at ${unavailableMs} ms; bound ${READY_BOUND_MS} ms`
		);
		expect(readyMs).toBeLessThan(READY_BOUND_MS);
		expect(unavailableMs).toBeLessThan(READY_BOUND_MS);
		expect(await regions.readiness(ALONE)).toMatchObject({ status: 200, body: { ready: true, serving: "own-users", global: "unavailable" } });
		for (const user of regions.usersOf(ALONE)) await regions.serveOwnUser(ALONE, user, OTHER_CN_EAST_COUNTRY);
		expectRetryableRefusal("cut, after the restart: registration", await timed(regions.register(ALONE)));
	}, 30_000);

	it(
		"heal: global operations come back, its mirror catches up (the user registered during the cut included), no home changed",
		async () => {
			await net.heal(ALONE);
			const back = await within(regions.globalIs(ALONE, "available"), HEAL_BOUND_MS);
			console.log(`heal: ${ALONE}'s /readyz says global operations available ${back} ms after the heal`);
			const mirrored = await within(async () => {
				for (const user of regions.users) if ((await regions.homeInMirror(ALONE, user.id)) !== user.home) return false;
				return true;
			}, MIRROR_CATCH_UP_BOUND_MS).catch(async err => {
				throw new Error(`${err.message}: ${ALONE}'s mirror ${JSON.stringify(await regions.mirrorState(ALONE))}`);
			});
			console.log(`heal: ${ALONE}'s own mirror held all ${regions.users.length} users at their home ${mirrored} ms later`);
			const served = await regions.untilEveryHomeServed(REGIONS, SERVED_AFTER_HEAL_BOUND_MS);
			console.log(`heal: every gateway logged in all ${regions.users.length} users at their unchanged home ${served} ms after that`);
			// The server that rejoined may still start an election of the origin's leader; meanwhile registrations are refused (503, retryable).
			const after = await regions.registerRetrying(ALONE, REGISTRATION_RESUME_BOUND_MS);
			console.log(`heal: a registration in ${ALONE} succeeded after ${after.took} ms of retries; refusals: ${JSON.stringify([...after.refusals])}`);
			// The test's own limit holds every bound above, one after the other (it used to be tighter than their sum).
		},
		HEAL_BOUND_MS + MIRROR_CATCH_UP_BOUND_MS + SERVED_AFTER_HEAL_BOUND_MS + REGISTRATION_RESUME_BOUND_MS + 10_000
	);
});
