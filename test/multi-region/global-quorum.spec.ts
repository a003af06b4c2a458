import type { NatsConnection } from "nats";
import { connect } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NatsKvDirectoryStore } from "../../regions/directory/nats-kv-store.ts";
import { openNatsKvDirectory } from "../../regions/directory/nats-kv-store.ts";
import type { GlobalStatus } from "../../regions/runtime/global-probe.ts";
import { GlobalProbe } from "../../regions/runtime/global-probe.ts";
import type { EdgeTopology } from "../harness/edge-topology.ts";
import { startEdgeTopology } from "../harness/edge-topology.ts";
import type { RegionNetwork } from "../harness/netns.ts";
import { createRegionNetwork, netnsAvailable } from "../harness/netns.ts";
import { failureOf, within } from "../harness/waiting.ts";

const REGIONS = ["cn-east", "ap-south", "eu-central"];
const ALONE = "cn-east";
const OTHERS = REGIONS.filter(r => r !== ALONE);
const BUCKET = "global-quorum";
const ORIGIN_STREAM = `KV_${BUCKET}`;
/** What a region node runs with (app/node.ts defaults). */
const PROBE_MS = 1000;
const PROBE_TIMEOUT_MS = 2000;
/**
 * The origin's leader, alone, must be seen to be unable to commit within this of the cut (it answers reads for ~10 s
 * more): its replicas count for 2 s after their last heartbeat answer (nats-kv-store.ts), then up to 1.2 s until the
 * next check. Measured 2.3–2.9 s.
 */
const NOTICE_BOUND_MS = 3500;
/** The two hub servers left elect a new leader (raft election timeout 4–9 s) and their regions can write again. */
const OTHERS_RESUME_BOUND_MS = 20_000;
/** Hub servers that meet again re-elect their leaders. */
const HEAL_BOUND_MS = 30_000;
/** Before any cut, the probes are watched this long: an idle origin must never look unavailable. */
const STEADY_MS = 8000;

const netns = await netnsAvailable();
if (!netns) console.log("global-quorum.spec.ts: the cut-link case is skipped: network namespaces are not available here");

interface Region {
	store: NatsKvDirectoryStore;
	probe: GlobalProbe;
	/** Every status change the probe reported, with its time. */
	changes: { status: GlobalStatus; at: number }[];
}

/** Per region, a directory store on its edge server with the probe a region node runs, their changes recorded. */
class ProbedRegions {
	readonly byId = new Map<string, Region>();
	private hub: NatsConnection | undefined;
	private recorder: NodeJS.Timeout | undefined;
	private readonly topology: EdgeTopology;

	constructor(topology: EdgeTopology) {
		this.topology = topology;
	}

	async start(): Promise<void> {
		for (const id of REGIONS) {
			const store = await openNatsKvDirectory({ servers: this.topology.urls[id]!, bucket: BUCKET, ...this.topology.placement(id), name: `probe-${id}` });
			const probe = new GlobalProbe({ store, intervalMs: PROBE_MS, timeoutMs: PROBE_TIMEOUT_MS });
			probe.start();
			this.byId.set(id, { store, probe, changes: [] });
		}
		this.recorder = setInterval(() => {
			for (const region of this.byId.values()) {
				const { status, since } = region.probe.state;
				if (region.changes.at(-1)?.status !== status) region.changes.push({ status, at: since });
			}
		}, 10);
		await within(() => REGIONS.every(id => this.status(id) === "available"), 20_000);
		this.hub = await connect({ servers: this.topology.hubUrls[ALONE]! });
	}

	async stop(): Promise<void> {
		clearInterval(this.recorder);
		for (const { probe, store } of this.byId.values()) {
			probe.stop();
			await store.close();
		}
		await this.hub?.close();
	}

	status(id: string): GlobalStatus {
		return this.byId.get(id)!.probe.state.status;
	}

	/** When the region's probe last turned `status` after `from`; undefined if it has not. */
	turned(id: string, status: GlobalStatus, from: number): number | undefined {
		const { probe, changes } = this.byId.get(id)!;
		const now = probe.state;
		return changes.find(c => c.status === status && c.at >= from)?.at ?? (now.status === status && now.since >= from ? now.since : undefined);
	}

	async originLeader(): Promise<string | undefined> {
		const jsm = await this.hub!.jetstreamManager();
		return (await jsm.streams.info(ORIGIN_STREAM)).cluster?.leader;
	}

	/** Asks the origin's leader to step down until the one elected is `id`'s hub server (each election picks at random). */
	async leadOriginFrom(id: string): Promise<void> {
		const wanted = `hub-${id}`;
		for (let attempt = 0; attempt < 12; attempt++) {
			const leader = await this.originLeader().catch(() => undefined);
			if (leader === wanted) return;
			if (leader) await this.hub!.request(`$JS.API.STREAM.LEADER.STEPDOWN.${ORIGIN_STREAM}`, undefined, { timeout: 2000 });
			await within(async () => ((await this.originLeader().catch(() => undefined)) ?? leader) !== leader, 15_000);
		}
		throw new Error(`the origin's leader never landed on ${wanted}`);
	}

	/** Writes through a region's store; "(succeeded)" or the error's code. */
	async write(id: string, key: string): Promise<string> {
		const failure = await failureOf(this.byId.get(id)!.store.create(key, { at: Date.now() }));
		return (failure as { code?: string }).code ?? failure.type;
	}
}

interface Scenario {
	/** Starts the servers (and whatever `cut` and `heal` need). */
	setup(): Promise<EdgeTopology>;
	/** Removes what setup made besides the servers. */
	teardown(): Promise<void>;
	cut(topology: EdgeTopology): Promise<void>;
	heal(topology: EdgeTopology): Promise<void>;
	/** Whether the other regions' hub servers still make a quorum without the region left alone. */
	othersKeepQuorum: boolean;
}

/**
 * Readiness says whether a write could commit, not whether the origin answers: with the origin stream's leader on
 * the region left alone, that leader keeps answering reads (nats-server steps down after ~10 s without a quorum)
 * while no write can commit. The probe (regions/runtime/global-probe.ts over NatsKvDirectoryStore.checkOrigin) must
 * see it within a few seconds, agree with what a write does there, and see global operations back after the heal.
 */
function aloneWithTheLeader(title: string, scenario: Scenario, skip = false): void {
	describe.skipIf(skip)(title, () => {
		let topology: EdgeTopology;
		let regions: ProbedRegions;

		beforeAll(async () => {
			topology = await scenario.setup();
			// Each edge on its own region's hub server: one left on the region cut off would be cut off with it.
			for (const id of REGIONS) expect(await topology.leafHubOf(id), `${id}'s edge's hub server`).toBe(id);
			regions = new ProbedRegions(topology);
			await regions.start();
		}, 60_000);

		afterAll(async () => {
			await regions?.stop();
			await topology?.stop();
			await scenario.teardown();
		});

		it("the region alone with the origin's leader says global operations unavailable within seconds, like its writes; back after the heal", async () => {
			const steadyFrom = Date.now();
			await new Promise(r => setTimeout(r, STEADY_MS));
			for (const id of REGIONS) expect(regions.turned(id, "unavailable", steadyFrom), `${id} flapped while all was well`).toBeUndefined();

			await regions.leadOriginFrom(ALONE);
			// The elections that moved the leader may have had a probe say unavailable; the cut is judged from all well.
			await within(() => REGIONS.every(id => regions.status(id) === "available"), 20_000);
			const cutAt = Date.now();
			await scenario.cut(topology);
			await within(() => regions.status(ALONE) === "unavailable", NOTICE_BOUND_MS);
			const noticed = regions.turned(ALONE, "unavailable", cutAt)! - cutAt;
			console.log(`${title}: ${ALONE}, alone with the origin's leader, says global operations unavailable ${noticed} ms after the cut`);
			expect(noticed).toBeLessThan(NOTICE_BOUND_MS);
			// Honest: a write there fails, while the cut-off leader may well still be answering reads.
			expect(await regions.write(ALONE, `alone.${cutAt}`)).toBe("DIRECTORY_UNAVAILABLE");

			for (const id of OTHERS) {
				if (!scenario.othersKeepQuorum) {
					await within(() => regions.status(id) === "unavailable", NOTICE_BOUND_MS);
					expect(await regions.write(id, `none.${id}.${cutAt}`)).toBe("DIRECTORY_UNAVAILABLE");
					continue;
				}
				// Their two hub servers elect a new leader; meanwhile their writes fail and their probes may say so.
				let last = "";
				await within(async () => (last = await regions.write(id, `kept.${id}.${Date.now()}`)) === "(succeeded)", OTHERS_RESUME_BOUND_MS).catch(async err => {
					throw new Error(`${id}'s writes did not resume: ${err.message}, the last one ${last}; its edge's hub server: ${await topology.leafHubOf(id)}`);
				});
				const writable = Date.now() - cutAt;
				await within(() => regions.status(id) === "available", PROBE_MS * 1.2 + PROBE_TIMEOUT_MS);
				const down = regions.turned(id, "unavailable", cutAt);
				console.log(
					`${title}: ${id} writes again ${writable} ms after the cut; its probe ${down === undefined ? "never said unavailable" : `said unavailable at ${down - cutAt} ms, available again at ${regions.turned(id, "available", down)! - cutAt} ms`}`
				);
			}
			expect(regions.status(ALONE)).toBe("unavailable");

			const healAt = Date.now();
			await scenario.heal(topology);
			for (const id of REGIONS) await within(() => regions.status(id) === "available", HEAL_BOUND_MS);
			console.log(`${title}: ${ALONE} says global operations available ${regions.turned(ALONE, "available", healAt)! - healAt} ms after the heal`);
			for (const id of REGIONS) expect(await regions.write(id, `healed.${id}.${healAt}`)).toBe("(succeeded)");
		}, 120_000);
	});
}

let net: RegionNetwork | undefined;
aloneWithTheLeader(
	"links cut",
	{
		async setup() {
			net = await createRegionNetwork(REGIONS);
			return startEdgeTopology(REGIONS, { spawnPrefix: net.spawnPrefix, hostOf: net.wanAddress, clientHostOf: net.mgmtAddress });
		},
		async teardown() {
			await net?.destroy();
		},
		cut: () => net!.cut(ALONE),
		heal: () => net!.heal(ALONE),
		othersKeepQuorum: true
	},
	!netns
);

aloneWithTheLeader("other hub servers killed", {
	setup: () => startEdgeTopology(REGIONS),
	teardown: async () => undefined,
	// At once: the region is alone from the moment both are gone.
	cut: topology => Promise.all(OTHERS.map(id => topology.killHub(id))).then(() => undefined),
	async heal(topology) {
		for (const id of OTHERS) await topology.restartHub(id);
	},
	othersKeepQuorum: false
});
