import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { openSqliteDirectory } from "../../../../regions/directory/sqlite-store.ts";
import type { DirectoryChange } from "../../../../regions/directory/store.ts";
import { directoryContract } from "./contract.ts";

const dir = mkdtempSync(join(tmpdir(), "edgehome-directory-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

directoryContract("SQLite in memory", async () => openSqliteDirectory(":memory:"));
directoryContract("SQLite file", async () => openSqliteDirectory(join(dir, "contract.db")));

describe("SQLite directory shared by two stores on one file", () => {
	it("feeds a watcher of one store the writes of the other, by polling the change log", async () => {
		const file = join(dir, "shared.db");
		const writer = openSqliteDirectory(file);
		const reader = openSqliteDirectory(file);
		try {
			const changes: DirectoryChange<{ region: string }>[] = [];
			const watch = await reader.watch<{ region: string }>(change => changes.push(change));
			const revision = await writer.create("user.a", { region: "cn-east" });
			// The reader's store is not told about the other connection's write: only its poll finds it.
			expect(changes).toEqual([]);
			await expect.poll(() => changes, { timeout: 2000, interval: 20 }).toEqual([{ key: "user.a", value: { region: "cn-east" }, revision }]);
			await writer.delete("user.a", revision);
			await expect.poll(() => changes.length, { timeout: 2000, interval: 20 }).toBe(2);
			expect(changes[1]).toEqual({ key: "user.a", value: undefined, revision: revision + 1 });
			expect(await reader.get("user.a")).toBeUndefined();
			await watch.stop();
		} finally {
			await writer.close();
			await reader.close();
		}
	});

	it("keeps entries and revisions across a reopen", async () => {
		const file = join(dir, "reopen.db");
		const first = openSqliteDirectory(file);
		const revision = await first.create("user.a", { region: "eu-central" });
		await first.close();
		const second = openSqliteDirectory(file);
		try {
			expect(await second.get("user.a")).toEqual({ key: "user.a", value: { region: "eu-central" }, revision });
			expect(await second.create("user.b", { region: "ap-south" })).toBeGreaterThan(revision);
		} finally {
			await second.close();
		}
	});
});
