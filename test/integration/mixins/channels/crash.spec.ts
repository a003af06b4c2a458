import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ServiceBroker } from "moleculer";
import { afterAll, describe, expect, it } from "vitest";
import type { ChannelStore } from "../../../../mixins/channels/index.ts";
import { openJetStreamChannels, openSqliteChannels } from "../../../../mixins/channels/index.ts";
import { Channels } from "../../../../mixins/channels.mixin.ts";
import { openLedger } from "../../../harness/channels-node.ts";
import { deleteChannelStreams } from "../../../harness/channels-streams.ts";
import { REAL, runId } from "../../../harness/real-servers.ts";

const dir = mkdtempSync(join(tmpdir(), "edgehome-channels-crash-"));
const namespace = `t${runId()}`;
const children: ChildProcess[] = [];

afterAll(async () => {
	for (const child of children) child.kill("SIGKILL");
	rmSync(dir, { recursive: true, force: true });
	await deleteChannelStreams(namespace);
});

async function consumerNode(store: string, ledger: string, handlerMs: number): Promise<ChildProcess> {
	const child = spawn(process.execPath, ["test/harness/channels-node.ts"], {
		env: {
			...process.env,
			CHANNELS_STORE: store,
			CHANNELS_NAMESPACE: namespace,
			CHANNELS_LEDGER: ledger,
			CHANNELS_HANDLER_MS: String(handlerMs),
			CHANNELS_ACK_WAIT_MS: "3000"
		},
		stdio: ["ignore", "pipe", "inherit"]
	});
	children.push(child);
	await new Promise<void>((resolve, reject) => {
		child.stdout!.on("data", (d: Buffer) => d.toString().includes("ready") && resolve());
		child.once("exit", code => reject(new Error(`consumer node exited with ${code} before it was ready`)));
	});
	return child;
}

const stores: [string, (file: string) => string, (spec: string) => Promise<ChannelStore>][] = [
	["JetStream", () => REAL.nats, spec => openJetStreamChannels({ servers: spec, namespace })],
	["SQLite file", file => file, async spec => openSqliteChannels(spec)]
];

describe.each(stores)("a consumer SIGKILLed mid-handler (%s)", (name, storeOf, open) => {
	it("gets its message redelivered to the next consumer, and the idempotent handler applies it once", async () => {
		const store = storeOf(join(dir, `${name.replace(/\W/g, "")}.channels.sqlite`));
		const ledgerFile = join(dir, `${name.replace(/\W/g, "")}.ledger.sqlite`);
		const ledger = openLedger(ledgerFile);
		const slow = await consumerNode(store, ledgerFile, 60_000);
		const channels = await open(store);
		const producer = new ServiceBroker({ logger: false, middlewares: [Channels({ store: channels })] });
		await producer.start();
		try {
			const { id } = await producer.sendToChannel("work", { job: 1 });
			await expect.poll(() => ledger.prepare("SELECT count(*) AS n FROM started WHERE id = ?").get(id)!.n, { timeout: 5000, interval: 20 }).toBe(1);
			slow.kill("SIGKILL");
			const fast = await consumerNode(store, ledgerFile, 0);
			const more = await Promise.all(Array.from({ length: 20 }, (_, i) => producer.sendToChannel("work", { job: i + 2 })));
			await expect.poll(() => ledger.prepare("SELECT count(*) AS n FROM handled").get()!.n, { timeout: 20_000, interval: 50 }).toBe(more.length + 1);
			// The killed run was attempt 1; the next consumer's run (attempt 2, or later on a loaded machine) applied it, once.
			const started = ledger.prepare("SELECT attempt, pid FROM started WHERE id = ? ORDER BY attempt").all(id) as { attempt: number; pid: number }[];
			expect(started[0]).toEqual({ attempt: 1, pid: slow.pid });
			expect(started.slice(1).every(run => run.pid === fast.pid && run.attempt >= 2)).toBe(true);
			expect(ledger.prepare("SELECT pid FROM handled WHERE id = ?").all(id)).toEqual([{ pid: fast.pid }]);
			const runs = ledger.prepare("SELECT count(*) AS n FROM started").get()!.n as number;
			console.log(`${name}: killed mid-handler; ${more.length + 1} messages handled once each in ${runs} handler runs (1 cut short by the kill)`);
			fast.kill("SIGKILL");
		} finally {
			await producer.stop();
			await channels.close();
			ledger.close();
		}
	});
});
