import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { keepDataPrivate } from "../../../../app/launch/private-data.ts";
import { startRegionNode, storeSettings } from "../../../../app/node.ts";
import { openSqliteDirectory } from "../../../../regions/directory/sqlite-store.ts";
import { loadRegions } from "../../../../regions/loader.ts";
import { embeddedBlindIndexKey, embeddedPiiKeys } from "../../../../regions/runtime/secrets.ts";

const umask = process.umask();
const root = mkdtempSync(join(tmpdir(), "eh-private-"));

afterAll(() => {
	process.umask(umask);
	rmSync(root, { recursive: true, force: true });
});

const modeOf = (path: string) => (statSync(path).mode & 0o777).toString(8);

describe("embedded data folder", () => {
	it("holds keys and databases only its owner can read: folder 0700, every file 0600, old 0644 files tightened", async () => {
		const dir = join(root, "data");
		// A folder left by an older start: world-readable.
		mkdirSync(dir, { mode: 0o755 });
		chmodSync(dir, 0o755);
		writeFileSync(join(dir, "pii-keys"), `k1:${Buffer.alloc(32, 1).toString("base64")}`, { mode: 0o644 });
		process.umask(0o022);

		// What `npm start` does with its data folder, for one region.
		keepDataPrivate(dir);
		const env = { EDGEHOME_METRICS_PORT: "off", EDGEHOME_NAMESPACE_PREFIX: "private-", EDGEHOME_PII_KEYS: embeddedPiiKeys({}, join(dir, "pii-keys")) };
		const store = await openSqliteDirectory(join(dir, "directory.sqlite"));
		const regions = loadRegions();
		const region = regions.find(r => r.id === "cn-east")!;
		const node = await startRegionNode({
			region,
			regions,
			transport: "embedded",
			services: ["sv-region", "sv-user"],
			stores: storeSettings(region, "embedded", env, { dataDir: dir }),
			directory: { store, blindIndexKey: embeddedBlindIndexKey({}, join(dir, "blind-index.key")) },
			env,
			overrides: { logger: false }
		});
		try {
			await node.broker.call("sv-user.register", { username: "private", password: "kept to myself 1", email: "me@example.cn", country: "CN" });
			const files = readdirSync(dir);
			expect(files).toEqual(expect.arrayContaining(["pii-keys", "blind-index.key", "directory.sqlite", "cn-east.sqlite"]));
			expect(modeOf(dir)).toBe("700");
			expect(Object.fromEntries(files.map(f => [f, modeOf(join(dir, f))]))).toEqual(Object.fromEntries(files.map(f => [f, "600"])));
		} finally {
			await node.stop();
			await store.close();
		}
	});
});
