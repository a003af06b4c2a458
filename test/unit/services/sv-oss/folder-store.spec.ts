import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { openFolderStore } from "../../../../services/sv-oss/folder-store.ts";
import { blobStoreContract } from "./store-contract.ts";

const root = mkdtempSync(join(tmpdir(), "oss-folder-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

blobStoreContract("data folder", () => openFolderStore(join(root, "contract")));

it("clears what a killed writer left half written when it opens again", async () => {
	const dir = join(root, "reopened");
	await (await openFolderStore(dir)).close();
	writeFileSync(join(dir, ".partial", "left-by-a-crash"), "half");
	await openFolderStore(dir);
	expect(readdirSync(join(dir, ".partial"))).toEqual([]);
});
