import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../../app/node.ts";
import { startRegionNode } from "../../../app/node.ts";
import type { ChannelDelivery } from "../../../mixins/channels/index.ts";
import { openSqliteDirectory } from "../../../regions/directory/sqlite-store.ts";
import { loadRegions } from "../../../regions/loader.ts";
import { deleteChannelStreams } from "../../harness/channels-streams.ts";
import { launcherEnv, runId } from "../../harness/real-servers.ts";
import type { ReplConsole } from "../../harness/repl-console.ts";
import { startReplConsole } from "../../harness/repl-console.ts";

const run = runId();
const env = launcherEnv(run, { EDGEHOME_MOVE_PARTICIPANTS: "" });
const directoryStore = openSqliteDirectory(":memory:");
let node: RegionNode;
let repl: ReplConsole;
let cured = false;
let handled = 0;
let deadId = "";

beforeAll(async () => {
	node = await startRegionNode({
		region: loadRegions().find(r => r.id === "cn-east")!,
		transport: "nats",
		services: [],
		schemas: [
			{
				name: "mailer",
				channels: {
					"mail.queued": {
						maxRetries: 1,
						handler(_msg: ChannelDelivery) {
							if (!cured) throw new Error("smtp refused");
							handled++;
						}
					}
				}
			}
		],
		stores: { sql: "sqlite::memory:", keyPrefix: "channels-repl:" },
		directory: { store: directoryStore, blindIndexKey: randomBytes(32) },
		env,
		overrides: { logger: false }
	});
	deadId = (await node.broker.sendToChannel("mail.queued", { to: "ann" })).id;
	const deadline = Date.now() + 5000;
	while ((await node.broker.call<unknown[], unknown>("$channels.deadLetters", { channel: "mail.queued" })).length === 0) {
		if (Date.now() > deadline) throw new Error("the poison message was never dead-lettered");
		await new Promise(r => setTimeout(r, 50));
	}
	// Makes the outbox for eu-central, where no node runs: the message waits in it.
	await node.broker.sendToChannel("mail.queued", { to: "bo" }, { region: "eu-central" });
	repl = await startReplConsole("cn-east", env);
});

afterAll(async () => {
	repl?.kill();
	await node?.stop();
	await directoryStore.close();
	await deleteChannelStreams(`t${run}`);
});

describe("npm run repl: channels", () => {
	it("lists the region's channels with their pending and dead-lettered counts, its outboxes among them", async () => {
		await repl.typed("channels list", /mail\.queued\s+mailer\s+pending=0 acked=0 redelivered=1 dead=1 consumers=1/);
		await repl.until(/OUTBOX-eu-central\s+forwarder\s+pending=1/);
	});

	it("shows a channel's dead letters with error and attempts, and replays one", async () => {
		await repl.typed("channels dlq mail.queued", new RegExp(`${deadId} group=mailer attempts=2 at=\\S+ error=smtp refused`));
		cured = true;
		await repl.typed(`channels replay mail.queued ${deadId}`, new RegExp(`replayed ${deadId} to group mailer as [0-9a-f-]{36}`));
		await expect.poll(() => handled, { timeout: 5000 }).toBe(1);
		await repl.typed("channels dlq mail.queued", /mail\.queued: no dead letters/);
	});

	it("answers a bad sub-command or an unknown dead letter with one line", async () => {
		await repl.typed("channels purge x", /unknown sub-command "purge"; try: channels list \| channels dlq <name> \| channels replay <name> <id>/);
		await repl.typed("channels replay mail.queued no-such-id", /error: channel "mail\.queued" has no dead letter "no-such-id" \(DEAD_LETTER_NOT_FOUND\)/);
	});
});
