import { createHash, randomBytes } from "node:crypto";
import type { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { regionRuntimeOf } from "../../../regions/runtime/region-runtime.ts";
import type { FileView } from "../../../services/sv-oss/files.ts";
import { callHome } from "../../../services/sv-oss/home-calls.ts";
import { fromWire } from "../../../services/sv-oss/wire.ts";
import type { EmbeddedRegions } from "../../harness/embedded-regions.ts";
import { everyRegionLinked, startEmbeddedRegions } from "../../harness/embedded-regions.ts";
import { bytesOf, textOf } from "../../unit/services/sv-oss/store-contract.ts";

/*
 * A user's files move with the user: 100 MB in four files, streamed from the old home to the new
 * one with each digest checked, readable at the new home afterwards, and nothing left behind.
 */

const FILE_BYTES = 25 * 1024 * 1024;
let cluster: EmbeddedRegions | undefined;
const broker = (region: string) => cluster!.nodes[region]!.broker;

beforeAll(async () => {
	Object.assign(process.env, { EDGEHOME_OSS_MAX_FILE_BYTES: String(FILE_BYTES) });
	cluster = await startEmbeddedRegions({
		namespacePrefix: `oss-moves-${randomBytes(3).toString("hex")}-`,
		services: ["sv-region", "sv-user", "sv-oss"]
	});
	await everyRegionLinked(cluster, 10_000);
}, 60_000);

afterAll(async () => {
	await cluster?.stop();
});

describe("sv-oss: files move with their user", () => {
	it("moves a user with 100 MB of files: every byte and digest arrives, nothing stays behind", async () => {
		const { userId } = await broker("cn-east").call<{ userId: string }, unknown>("sv-region.register", {
			identities: [{ kind: "username", value: `mover-${randomBytes(3).toString("hex")}` }],
			country: "JP"
		});
		const files: { view: FileView; sha256: string }[] = [];
		for (let i = 0; i < 4; i++) {
			const body = textOf(FILE_BYTES, `file ${i}`);
			const view = await callHome<FileView>(
				broker("cn-east"),
				userId,
				"sv-oss.upload",
				{ userId, name: `part-${i}.txt`, contentType: "text/plain" },
				{ timeout: 60_000 },
				body.stream()
			);
			expect(view.sha256).toBe(body.sha256);
			files.push({ view, sha256: body.sha256 });
		}
		const oldBlobs = (cluster!.nodes["cn-east"]!.broker.getLocalService("sv-oss") as unknown as { blobs: { has(k: string): Promise<boolean> } }).blobs;

		const started = Date.now();
		await broker("cn-east").call("sv-region.move", { userId, to: "ap-south" }, { timeout: 120_000 });
		const took = Date.now() - started;
		expect((await regionRuntimeOf(broker("eu-central")).directory.refresh(userId))?.region).toBe("ap-south");

		// Read from eu-central: routed to the new home, the bytes whole.
		const usage = await broker("eu-central").call<{ files: number; usedBytes: number }, unknown>("sv-oss.usage", { userId });
		expect(usage).toMatchObject({ files: 4, usedBytes: 4 * FILE_BYTES });
		const back = await bytesOf(fromWire(await callHome<Readable>(broker("eu-central"), userId, "sv-oss.read", { userId, id: files[3]!.view.id })));
		expect(createHash("sha256").update(back).digest("hex")).toBe(files[3]!.sha256);

		// The old home keeps neither rows nor bytes.
		expect(await broker("cn-east").call("sv-oss.move.count", { userId })).toBe(0);
		for (const f of files) expect(await oldBlobs.has(`${userId}/${f.view.id}`)).toBe(false);
		console.log(`sv-oss: moved 100 MB of files in ${took} ms`);
	}, 180_000);
});
