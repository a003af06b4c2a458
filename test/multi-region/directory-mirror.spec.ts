import { connect } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openNatsKvDirectory } from "../../regions/directory/nats-kv-store.ts";
import type { DirectoryChange, DirectoryStore } from "../../regions/directory/store.ts";
import { DirectoryError } from "../../regions/directory/store.ts";
import { whileDirectoryUnavailable } from "../harness/directory-retry.ts";
import { runId } from "../harness/real-servers.ts";
import type { Supercluster } from "../harness/supercluster.ts";
import { startSupercluster } from "../harness/supercluster.ts";
import { timed } from "../harness/waiting.ts";

const PRIMARY = "cn-east";
const REGIONS = [PRIMARY, "ap-south", "eu-central"];
const OTHERS = REGIONS.filter(r => r !== PRIMARY);
const TIMEOUT_MS = 2000;

interface Home {
	region: string;
	epoch: number;
}

/** Writes take a moment to reach another region's mirror: poll, within a bound. */
function eventually<T>(read: () => Promise<T> | T, timeout = 10_000) {
	return expect.poll(read, { timeout, interval: 50 });
}

function expectUnavailable(result: unknown): void {
	expect(result).toBeInstanceOf(DirectoryError);
	expect((result as DirectoryError).code).toBe("DIRECTORY_UNAVAILABLE");
}

describe("directory on a three-region NATS supercluster, origin in cn-east, mirrors elsewhere", () => {
	const bucket = `dir-${runId()}`;
	let cluster: Supercluster;
	const stores: Record<string, DirectoryStore> = {};
	const seen: Record<string, DirectoryChange<Home>[]> = {};

	beforeAll(async () => {
		cluster = await startSupercluster(REGIONS);
		// The primary first, so that the origin exists before the mirrors are made of it. The servers
		// take clients before JetStream has elected its meta leader: opening waits that out.
		for (const region of REGIONS) {
			stores[region] = await whileDirectoryUnavailable(() =>
				openNatsKvDirectory({
					servers: cluster.urls[region]!,
					bucket,
					cluster: region,
					primaryCluster: PRIMARY,
					timeoutMs: TIMEOUT_MS,
					name: `directory-${region}`
				})
			);
			seen[region] = [];
			await stores[region].watch<Home>(change => seen[region]!.push(change));
		}
	});

	afterAll(async () => {
		try {
			await Promise.all(Object.values(stores).map(s => s.close()));
		} finally {
			await cluster?.stop();
		}
	});

	it("places the origin in the primary cluster and each mirror in its own region", async () => {
		const nc = await connect({ servers: cluster.urls[PRIMARY]! });
		try {
			const jsm = await nc.jetstreamManager();
			const origin = await jsm.streams.info(`KV_${bucket}`);
			expect(origin.cluster?.name).toBe(PRIMARY);
			for (const region of OTHERS) {
				const mirror = await jsm.streams.info(`KV_${bucket}-${region}`);
				expect(mirror.cluster?.name).toBe(region);
				expect(mirror.config.mirror?.name).toBe(`KV_${bucket}`);
			}
		} finally {
			await nc.close();
		}
	});

	it("makes a write in any region readable in every region and seen by every region's watcher", async () => {
		const key = "user.written-in-eu";
		const created = await stores["eu-central"]!.create<Home>(key, { region: "eu-central", epoch: 1 });
		for (const region of REGIONS) {
			await eventually(() => stores[region]!.get<Home>(key)).toEqual({
				key,
				value: { region: "eu-central", epoch: 1 },
				revision: created
			});
			await eventually(() => seen[region]!.filter(c => c.key === key)).toEqual([{ key, value: { region: "eu-central", epoch: 1 }, revision: created }]);
		}
		const updated = await stores["ap-south"]!.update<Home>(key, { region: "ap-south", epoch: 2 }, created);
		for (const region of REGIONS) await eventually(async () => (await stores[region]!.get<Home>(key))?.revision).toBe(updated);
		const page = await stores["ap-south"]!.list<Home>("user.", { limit: 10 });
		expect(page).toEqual({ entries: [{ key, value: { region: "ap-south", epoch: 2 }, revision: updated }], next: null });
	});

	it("keeps serving reads from the mirrors while cn-east is down, fails writes fast, and writes again once it is back", async () => {
		const key = "user.before-outage";
		const revision = await stores["ap-south"]!.create<Home>(key, { region: "ap-south", epoch: 1 });
		for (const region of OTHERS) await eventually(async () => (await stores[region]!.get<Home>(key))?.revision).toBe(revision);

		await cluster.kill(PRIMARY);

		for (const region of OTHERS) {
			const read = await timed(stores[region]!.get<Home>(key));
			expect(read.result).toEqual({ key, value: { region: "ap-south", epoch: 1 }, revision });
			expect(read.ms).toBeLessThan(TIMEOUT_MS);

			const create = await timed(stores[region]!.create<Home>(`user.during-outage-${region}`, { region, epoch: 1 }));
			expectUnavailable(create.result);
			expect(create.ms).toBeLessThan(3000);
			const update = await timed(stores[region]!.update<Home>(key, { region, epoch: 2 }, revision));
			expectUnavailable(update.result);
			expect(update.ms).toBeLessThan(3000);
		}
		// The primary's own store has lost its server: its writes time out, within the bound.
		const own = await timed(stores[PRIMARY]!.create<Home>("user.during-outage-cn-east", { region: PRIMARY, epoch: 1 }));
		expectUnavailable(own.result);
		expect(own.ms).toBeLessThan(3000);
		expect(await stores["eu-central"]!.get(key)).toMatchObject({ revision });

		await cluster.restart(PRIMARY);

		const after = "user.after-outage";
		const created = await whileDirectoryUnavailable(() => stores["eu-central"]!.create<Home>(after, { region: "eu-central", epoch: 1 }));
		expect(created).toBeGreaterThan(revision);
		for (const region of REGIONS)
			await eventually(async () => (await stores[region]!.get<Home>(after))?.value, 15_000).toEqual({
				region: "eu-central",
				epoch: 1
			});
		// Nothing written during the outage got through.
		for (const region of REGIONS) expect(await stores["ap-south"]!.get(`user.during-outage-${region}`)).toBeUndefined();
	}, 45_000);
});
