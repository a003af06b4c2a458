import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openSqliteDirectory } from "../../../../regions/directory/sqlite-store.ts";
import type { GlobalStatus } from "../../../../regions/runtime/global-probe.ts";
import { GlobalProbe } from "../../../../regions/runtime/global-probe.ts";
import type { UnreachableOrigin } from "../../../harness/unreachable-origin.ts";
import { unreachableOrigin } from "../../../harness/unreachable-origin.ts";
import { within } from "../../../harness/waiting.ts";

const INTERVAL_MS = 50;
const TIMEOUT_MS = 300;
let store: UnreachableOrigin;
let probe: GlobalProbe;

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

/** Resolves with the ms it took the probe to report `status`. */
const becomes = (status: GlobalStatus, withinMs: number) => within(() => probe.state.status === status, withinMs);

beforeEach(async () => {
	store = unreachableOrigin(await openSqliteDirectory(":memory:"));
	probe = new GlobalProbe({ store, intervalMs: INTERVAL_MS, timeoutMs: TIMEOUT_MS });
});

afterEach(async () => {
	probe.stop();
	store.reach();
	await store.close();
});

describe("global operations probe", () => {
	it("knows nothing before its first answer, then follows whether the origin answers", async () => {
		expect(probe.state.status).toBe("unknown");
		probe.start();
		await becomes("available", 1000);
		const availableSince = probe.state.since;

		store.cut("refuse");
		// A refused check is seen at the next probe: within one jittered interval.
		expect(await becomes("unavailable", 1000)).toBeLessThan(INTERVAL_MS * 1.2 + 100);
		expect(probe.state.since).toBeGreaterThanOrEqual(availableSince);

		store.reach();
		expect(await becomes("available", 1000)).toBeLessThan(INTERVAL_MS * 1.2 + 100);
	});

	it("declares the origin unreachable at its bound when a check gets no answer, and never stacks a second check on it", async () => {
		probe.start();
		await becomes("available", 1000);
		store.cut("hang");
		const tookMs = await becomes("unavailable", 2000);
		expect(tookMs).toBeGreaterThanOrEqual(TIMEOUT_MS - 10);
		expect(tookMs).toBeLessThan(INTERVAL_MS * 1.2 + TIMEOUT_MS + 100);
		// Many intervals later the one check is still waiting, alone.
		await sleep(INTERVAL_MS * 6);
		expect(store.pendingOriginReads).toBe(1);
		expect(probe.state.status).toBe("unavailable");

		// The held check then answers late, which is not enough: only the next check, in time, makes it available.
		store.reach();
		expect(await becomes("available", 1000)).toBeGreaterThanOrEqual(INTERVAL_MS * 0.8 - 5);
		expect(store.pendingOriginReads).toBe(0);
	});

	it("reads nothing more once stopped", async () => {
		probe.start();
		await becomes("available", 1000);
		probe.stop();
		store.cut("hang");
		await sleep(INTERVAL_MS * 4);
		expect(store.pendingOriginReads).toBe(0);
		expect(probe.state.status).toBe("available");
	});
});
