/**
 * A consumer node in its own process, for tests that SIGKILL one mid-handler: it consumes channel
 * `work` (group `workers`) from the store named by CHANNELS_STORE (`nats://…` or a SQLite file)
 * and records into the SQLite ledger CHANNELS_LEDGER each start of a handler run and, once per
 * message id (the idempotent effect), each handled message. Prints "ready" once consuming.
 */

import { DatabaseSync } from "node:sqlite";
import { setTimeout as sleep } from "node:timers/promises";
import { ServiceBroker } from "moleculer";
import type { ChannelDelivery, ChannelStore } from "../../mixins/channels/index.ts";
import { openJetStreamChannels, openSqliteChannels } from "../../mixins/channels/index.ts";
import { Channels } from "../../mixins/channels.mixin.ts";

const store = process.env.CHANNELS_STORE!;
const handlerMs = Number(process.env.CHANNELS_HANDLER_MS ?? "0");
const ackWaitMs = Number(process.env.CHANNELS_ACK_WAIT_MS ?? "1500");

export function openLedger(file: string): DatabaseSync {
	const db = new DatabaseSync(file);
	db.exec(`PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000;
		CREATE TABLE IF NOT EXISTS started (id TEXT NOT NULL, attempt INTEGER NOT NULL, pid INTEGER NOT NULL);
		CREATE TABLE IF NOT EXISTS handled (id TEXT PRIMARY KEY, attempt INTEGER NOT NULL, pid INTEGER NOT NULL);`);
	return db;
}

async function main(): Promise<void> {
	const ledger = openLedger(process.env.CHANNELS_LEDGER!);
	const channels: ChannelStore = store.startsWith("nats://")
		? await openJetStreamChannels({ servers: store, namespace: process.env.CHANNELS_NAMESPACE! })
		: openSqliteChannels(store);
	const broker = new ServiceBroker({ logger: false, middlewares: [Channels({ store: channels })] });
	broker.createService({
		name: "workers",
		channels: {
			work: {
				ackWaitMs,
				maxInFlight: 4,
				async handler(msg: ChannelDelivery) {
					ledger.prepare("INSERT INTO started (id, attempt, pid) VALUES (?, ?, ?)").run(msg.id, msg.attempt, process.pid);
					if (handlerMs) await sleep(handlerMs);
					// The idempotent effect: a second run of the same message changes nothing.
					ledger.prepare("INSERT INTO handled (id, attempt, pid) VALUES (?, ?, ?) ON CONFLICT DO NOTHING").run(msg.id, msg.attempt, process.pid);
				}
			}
		}
	});
	await broker.start();
	console.log("ready");
	process.on("SIGTERM", () => void broker.stop().then(() => channels.close().then(() => process.exit(0))));
}

if (import.meta.url === `file://${process.argv[1]}`)
	main().catch(err => {
		console.error(err);
		process.exit(1);
	});
