import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../../../app/node.ts";
import { startRegionNode } from "../../../../app/node.ts";
import { openSqliteDirectory } from "../../../../regions/directory/sqlite-store.ts";
import { loadRegions } from "../../../../regions/loader.ts";
import { freePort } from "../../../harness/free-port.ts";
import type { UnreachableOrigin } from "../../../harness/unreachable-origin.ts";
import { unreachableOrigin } from "../../../harness/unreachable-origin.ts";

/** A region node whose directory's origin the test cuts off and brings back, seen on its ops port. */
const TOKEN = "ops-global-spec-token-0123456789abcdefghij";
const PROBE_MS = 100;
const PROBE_TIMEOUT_MS = 400;
let store: UnreachableOrigin;
let node: RegionNode;
let base: string;
let userId: string;

interface ReadyzBody {
	status: string;
	ready: boolean;
	region: string;
	serving: string;
	global: string;
	bus: string;
	checks: Record<string, string>;
}

const readyz = async () => {
	const res = await fetch(`${base}/readyz`, { headers: { authorization: `Bearer ${TOKEN}` } });
	return { status: res.status, body: (await res.json()) as ReadyzBody };
};

/** The gauge's one sample, as Prometheus scrapes it. */
const gauge = async () => {
	const text = await (await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
	return /^edgehome_global_operations_available\{region="cn-east"\} (\d+)$/m.exec(text)?.[1];
};

/** Polls /readyz until it says `global`; every answer on the way must be 200. */
async function globalBecomes(global: string, withinMs: number): Promise<ReadyzBody> {
	const started = Date.now();
	for (;;) {
		const { status, body } = await readyz();
		expect(status, JSON.stringify(body)).toBe(200);
		if (body.global === global) return body;
		if (Date.now() - started > withinMs) throw new Error(`/readyz still says global=${body.global} after ${withinMs} ms`);
		await new Promise(r => setTimeout(r, 20));
	}
}

const READY = { status: "ready", ready: true, region: "cn-east", serving: "own-users", bus: "connected" };
const CHECKS = { startup: "ok", broker: "ok", transporter: "ok", stores: "ok" };

beforeAll(async () => {
	store = unreachableOrigin(await openSqliteDirectory(":memory:"));
	const port = await freePort();
	base = `http://127.0.0.1:${port}`;
	node = await startRegionNode({
		region: loadRegions().find(r => r.id === "cn-east")!,
		transport: "embedded",
		services: ["sv-region"],
		stores: { sql: "sqlite::memory:", keyPrefix: "ops-global:" },
		directory: { store, blindIndexKey: randomBytes(32) },
		env: {
			EDGEHOME_METRICS_PORT: String(port),
			EDGEHOME_OPS_TOKEN: TOKEN,
			EDGEHOME_NAMESPACE_PREFIX: "ops-global-",
			EDGEHOME_GLOBAL_PROBE_MS: String(PROBE_MS),
			EDGEHOME_GLOBAL_PROBE_TIMEOUT_MS: String(PROBE_TIMEOUT_MS)
		},
		overrides: { logger: false }
	});
	userId = (
		await node.broker.call<{ userId: string }, unknown>("sv-region.register", { identities: [{ kind: "username", value: "global-ann" }], country: "CN" })
	).userId;
});

afterAll(async () => {
	store?.reach();
	await node?.stop();
	await store?.close();
});

describe("/readyz and the gauge say whether global operations are available", () => {
	it("says so while the directory's origin answers", async () => {
		const body = await globalBecomes("available", 2000);
		expect(body).toEqual({ ...READY, global: "available", checks: CHECKS });
		expect(await gauge()).toBe("1");
	});

	it("stays ready for the region's own users when the origin refuses, says global unavailable, and returns", async () => {
		store.cut("refuse");
		expect(await globalBecomes("unavailable", 2000)).toEqual({ ...READY, global: "unavailable", checks: CHECKS });
		expect(await gauge()).toBe("0");
		// What the answer promises: an own user is still found; a registration fails fast and says why.
		expect(await node.broker.call("sv-region.lookup", { userId })).toMatchObject({ region: "cn-east" });
		const started = Date.now();
		await expect(
			node.broker.call("sv-region.register", { identities: [{ kind: "username", value: "global-bob" }], country: "CN" }, { retries: 0 })
		).rejects.toMatchObject({ code: 503, type: "DIRECTORY_UNAVAILABLE" });
		expect(Date.now() - started).toBeLessThan(1000);

		store.reach();
		expect(await globalBecomes("available", 2000)).toEqual({ ...READY, global: "available", checks: CHECKS });
		expect(await gauge()).toBe("1");
	});

	it("when the origin gives no answer at all: unavailable within the probe's bound, and /readyz never waits for the origin", async () => {
		store.cut("hang");
		const started = Date.now();
		await globalBecomes("unavailable", 2000);
		expect(Date.now() - started).toBeLessThan(PROBE_MS * 1.2 + PROBE_TIMEOUT_MS + 300);
		const asked = Date.now();
		expect((await readyz()).status).toBe(200);
		expect(Date.now() - asked).toBeLessThan(PROBE_TIMEOUT_MS);
		expect(await gauge()).toBe("0");

		store.reach();
		await globalBecomes("available", 2000);
		expect(await gauge()).toBe("1");
	});
});
