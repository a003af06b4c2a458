import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NatsKvDirectoryStore } from "../../regions/directory/nats-kv-store.ts";
import { openNatsKvDirectory } from "../../regions/directory/nats-kv-store.ts";
import type { DirectoryChange } from "../../regions/directory/store.ts";
import { whileDirectoryUnavailable } from "../harness/directory-retry.ts";
import type { EdgeTopology } from "../harness/edge-topology.ts";
import { startEdgeTopology } from "../harness/edge-topology.ts";
import { linkRelays, stallMirror } from "../harness/mirror-lag.ts";
import { runId } from "../harness/real-servers.ts";
import { within } from "../harness/waiting.ts";

/**
 * The directory store of a region whose mirror stops following (its deliveries held on the
 * region's link into the hub): reads go to the origin while the stalled mirror is made anew, and the change feed
 * goes on from where it was once the new mirror follows.
 */
describe("a directory store whose mirror stalls", () => {
	const bucket = `repair-${runId()}`;
	const relays = linkRelays(["ap-south"]);
	let cluster: EdgeTopology;
	let writer: NatsKvDirectoryStore;
	let mirrored: NatsKvDirectoryStore;
	const seen: DirectoryChange[] = [];

	beforeAll(async () => {
		cluster = await startEdgeTopology(["cn-east", "ap-south"], { linkFront: relays });
		const open = (region: string) => openNatsKvDirectory({ servers: cluster.urls[region]!, bucket, ...cluster.placement(region), mirrorStallMs: 2000 });
		writer = await open("cn-east");
		mirrored = await open("ap-south");
		// The origin is made by the first write: wait for the hub's leader to be elected.
		await whileDirectoryUnavailable(() => writer.create("user.first", { n: -1 }));
		await mirrored.watch(change => seen.push(change));
	});

	afterAll(async () => {
		await mirrored?.close();
		await writer?.close();
		await cluster?.stop();
	});

	it("answers from the origin while the mirror is made anew, and its feed resumes without a gap", async () => {
		await writer.create("user.before", { n: 0 });
		await within(async () => (await mirrored.get("user.before")) !== undefined, 5000);
		const stall = stallMirror(relays, "ap-south");
		let last = "";
		try {
			for (let i = 1; i <= 20; i++) {
				last = `user.held${i}`;
				await writer.create(last, { n: i });
				await new Promise(r => setTimeout(r, 300));
			}
			// Stalled for 2 s, then made anew: from then on local reads are the origin's.
			const ms = await within(async () => (await mirrored.get(last)) !== undefined, 10_000);
			console.log(`a key written while the mirror stalled was readable in its region ${ms} ms after the last write`);
		} finally {
			stall.resume();
		}
		await writer.create("user.after", { n: 21 });
		const ms = await within(() => seen.some(c => c.key === "user.after"), 15_000);
		console.log(`the change feed delivered a key written after the repair within ${ms} ms`);
		const keys = new Set(seen.map(c => c.key));
		for (let i = 1; i <= 20; i++) expect(keys.has(`user.held${i}`)).toBe(true);
		expect((await mirrored.get<{ n: number }>("user.after"))?.value).toEqual({ n: 21 });
	}, 60_000);
});
