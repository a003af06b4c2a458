import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "vitest";
import { openSqliteChannels } from "../../../../mixins/channels/sqlite-store.ts";
import { channelStoreContract } from "./contract.ts";

const dir = mkdtempSync(join(tmpdir(), "edgehome-channels-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

channelStoreContract("SQLite file", async () => openSqliteChannels(join(dir, "channels.sqlite")));
