import { connect } from "nats";
import { describe, expect, it } from "vitest";
import { openNatsKvDirectory } from "../../../../regions/directory/nats-kv-store.ts";
import { DirectoryError } from "../../../../regions/directory/store.ts";
import { freePort } from "../../../harness/free-port.ts";
import { REAL, runId } from "../../../harness/real-servers.ts";
import { directoryContract } from "../../../unit/regions/directory/contract.ts";

const bucket = `edgehome-dir-${runId()}`;

async function deleteBucket(): Promise<void> {
	const nc = await connect({ servers: REAL.nats });
	try {
		const jsm = await nc.jetstreamManager();
		await jsm.streams.delete(`KV_${bucket}`);
	} finally {
		await nc.close();
	}
}

directoryContract("NATS JetStream KV", () => openNatsKvDirectory({ servers: REAL.nats, bucket, name: "directory-contract" }), deleteBucket);

describe("NATS JetStream KV directory, unreachable", () => {
	it("fails to open with DIRECTORY_UNAVAILABLE when nothing listens", async () => {
		const started = Date.now();
		const err = await openNatsKvDirectory({ servers: `nats://127.0.0.1:${await freePort()}`, bucket, timeoutMs: 1000 }).catch(e => e);
		expect(err).toBeInstanceOf(DirectoryError);
		expect((err as DirectoryError).code).toBe("DIRECTORY_UNAVAILABLE");
		expect(Date.now() - started).toBeLessThan(1500);
	});
});
