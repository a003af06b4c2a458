import { randomBytes, randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { brokerConfig } from "../../../app/broker.config.ts";
import type { RegionNode } from "../../../app/node.ts";
import { startRegionNode } from "../../../app/node.ts";
import { channelsSubcommands } from "../../../app/repl/channels.command.ts";
import type { ChannelDelivery, DeadLetter } from "../../../mixins/channels/index.ts";
import { openSqliteDirectory } from "../../../regions/directory/sqlite-store.ts";
import { findRegion, loadRegions } from "../../../regions/loader.ts";
import { natsCredentials } from "../../../regions/runtime/bus-credentials.ts";
import { runId } from "../../harness/real-servers.ts";
import { secureLoginEnv } from "../../harness/secure-login.ts";
import type { SecureNats } from "../../harness/secure-nats.ts";
import { startSecureNats } from "../../harness/secure-nats.ts";
import { failureOf, within } from "../../harness/waiting.ts";

/**
 * `$channels` on the bus as deployed (TLS, the `service` and `ops` logins, production mode): an
 * intruder with the `service` login but without the `channels` key sends each of its actions to a
 * node of cn-east, and gets 403 with nothing stored, replayed or revealed; the REPL's commands and
 * eu-central's forwarder, holding the key, work.
 */
const run = runId();
const regions = loadRegions();
const cnEast = findRegion(regions, "cn-east");
const keys = `channels:${randomBytes(32).toString("base64")}`;
const directoryStore = openSqliteDirectory(":memory:");
/** What only the dead letter holds: the intruder must never see it. */
const IBAN = "DE44500105175407324931";
let nats: SecureNats;
let cn: RegionNode;
let eu: RegionNode;
let intruder: ServiceBroker;
const guests: ServiceBroker[] = [];
/** Every run of cn-east's handler, by message id. */
const runs: { id: string; payload: { iban?: string; amount: number } }[] = [];
let cured = false;
let deadId = "";

const envOf = (user: "service" | "ops", extra: Record<string, string> = {}) =>
	secureLoginEnv(nats, user, run, { NODE_ENV: "production", EDGEHOME_MOVE_PARTICIPANTS: "", ...extra });

function start(regionId: string, schemas: Parameters<typeof startRegionNode>[0]["schemas"] = []): Promise<RegionNode> {
	return startRegionNode({
		region: findRegion(regions, regionId),
		regions,
		transport: "nats",
		services: [],
		schemas,
		stores: { sql: "sqlite::memory:", keyPrefix: `t${run}-${regionId}:` },
		directory: { store: directoryStore, blindIndexKey: randomBytes(32) },
		env: envOf("service", { EDGEHOME_CAPABILITY_KEYS: keys }),
		overrides: { logger: false }
	});
}

/** A service-less node of cn-east configured as any node is (broker.config.ts), as the REPL is. */
async function guest(name: string, env: Record<string, string>): Promise<ServiceBroker> {
	const broker = new ServiceBroker({
		...brokerConfig({ region: cnEast, group: name, transport: "nats", env: { ...env, EDGEHOME_NODE_ID: `${name}-${run}` } }),
		logger: false
	});
	guests.push(broker);
	await broker.start();
	await broker.waitForServices(["$channels"], 10_000);
	return broker;
}

const to = () => ({ nodeID: cn.broker.nodeID });
const refusal = (name: string, reason = "missing") => ({ type: "CAPABILITY_REQUIRED", code: 403, data: { name, capability: "channels", reason } });
const deadLetters = () => cn.broker.call<DeadLetter[], unknown>("$channels.deadLetters", { channel: "payment.made" });
const ledgerPending = async () =>
	(await cn.broker.call<{ channels: { channel: string; group: string; pending: number | null }[] }, unknown>("$channels.list", {})).channels.find(
		r => r.channel === "payment.made" && r.group === "ledger"
	)?.pending;

beforeAll(async () => {
	nats = await startSecureNats();
	cn = await start("cn-east", [
		{
			name: "ledger",
			channels: {
				"payment.made": {
					maxRetries: 0,
					handler(msg: ChannelDelivery<{ iban?: string; amount: number }>) {
						runs.push({ id: msg.id, payload: msg.payload });
						if (msg.payload.iban && !cured) throw new Error("account closed");
					}
				}
			}
		}
	]);
	eu = await start("eu-central");
	deadId = (await cn.broker.sendToChannel("payment.made", { iban: IBAN, amount: 120 })).id;
	await within(async () => (await deadLetters()).some(d => d.id === deadId), 10_000);
	// The raw broker of someone holding the `service` login: Moleculer and the bus, no key, no signing middleware.
	intruder = new ServiceBroker({
		namespace: cn.broker.namespace,
		nodeID: `intruder-${run}`,
		logger: false,
		transporter: { type: "NATS", options: { url: nats.url, ...natsCredentials(envOf("service")) } }
	});
	await intruder.start();
	await intruder.waitForServices(["$channels"], 10_000);
}, 60_000);

afterAll(async () => {
	await intruder?.stop();
	for (const broker of guests) await broker.stop();
	await eu?.stop();
	await cn?.stop();
	await directoryStore.close();
	await nats?.stop();
});

describe("a node on the bus without the channels key", () => {
	it("cannot store a message with $channels.accept, the forwarders' target: CAPABILITY_REQUIRED, and nothing is stored or handled", async () => {
		const id = randomUUID();
		const forged = { channel: "payment.made", id, headers: {}, payload: JSON.stringify({ amount: 1_000_000 }) };
		expect(await failureOf(intruder.call("$channels.accept", forged, to()))).toMatchObject(refusal("$channels.accept"));
		await sleep(500);
		expect(runs.map(r => r.id)).not.toContain(id);
		expect(await ledgerPending()).toBe(0);
		// Stored now for the first time: the refused call left nothing under its id.
		expect(await cn.broker.call("$channels.accept", { ...forged, payload: JSON.stringify({ amount: 1 }) })).toEqual({ duplicate: false });
		await expect.poll(() => runs.filter(r => r.id === id).map(r => r.payload.amount), { timeout: 5000 }).toEqual([1]);
	});

	it("cannot read the dead letters, whose payloads hold personal data: CAPABILITY_REQUIRED, and the answer holds none of it", async () => {
		const err = await failureOf(intruder.call("$channels.deadLetters", { channel: "payment.made", limit: 10 }, to()));
		expect(err).toMatchObject(refusal("$channels.deadLetters"));
		expect(JSON.stringify(err)).not.toContain(IBAN);
		expect(JSON.stringify(err)).not.toContain(deadId);
	});

	it("cannot replay a dead letter: CAPABILITY_REQUIRED, the dead letter stays and its handler does not run again", async () => {
		const before = runs.length;
		expect(await failureOf(intruder.call("$channels.replay", { channel: "payment.made", id: deadId }, to()))).toMatchObject(refusal("$channels.replay"));
		await sleep(500);
		expect(runs).toHaveLength(before);
		expect((await deadLetters()).map(d => d.id)).toEqual([deadId]);
	});

	it("cannot list the region's channels: CAPABILITY_REQUIRED, and no channel is named", async () => {
		const err = await failureOf(intruder.call("$channels.list", {}, to()));
		expect(err).toMatchObject(refusal("$channels.list"));
		expect(JSON.stringify(err)).not.toContain("payment.made");
	});

	it("gets nowhere with a channels key of its own", async () => {
		const forger = await guest("forger", envOf("service", { EDGEHOME_CAPABILITY_KEYS: `channels:${randomBytes(32).toString("base64")}` }));
		expect(await failureOf(forger.call("$channels.deadLetters", { channel: "payment.made" }, to()))).toMatchObject(refusal("$channels.deadLetters", "invalid"));
		expect(await failureOf(forger.call("$channels.replay", { channel: "payment.made", id: deadId }, to()))).toMatchObject(
			refusal("$channels.replay", "invalid")
		);
		expect((await deadLetters()).map(d => d.id)).toEqual([deadId]);
	});
});

describe("nodes holding the channels key", () => {
	it("run the REPL's channels commands, logged in as ops: list, dlq and replay", async () => {
		const repl = await guest("repl", envOf("ops", { EDGEHOME_CAPABILITY_KEYS: keys }));
		const printed: string[] = [];
		const commands = channelsSubcommands({ regions, print: line => printed.push(line) });
		await commands.list!.run(repl, []);
		expect(printed).toContainEqual(expect.stringMatching(/^payment\.made\s+ledger\s+pending=0 acked=1 redelivered=0 dead=1 consumers=1$/));
		await commands.dlq!.run(repl, ["payment.made"]);
		expect(printed).toContainEqual(expect.stringMatching(new RegExp(`^${deadId} group=ledger attempts=1 at=\\S+ error=account closed$`)));
		cured = true;
		await commands.replay!.run(repl, ["payment.made", deadId]);
		expect(printed).toContainEqual(expect.stringMatching(new RegExp(`^replayed ${deadId} to group ledger as [0-9a-f-]{36}$`)));
		await expect.poll(() => runs.filter(r => r.payload.iban === IBAN).length, { timeout: 5000 }).toBe(2);
		expect(await deadLetters()).toEqual([]);
	});

	it("forward another region's messages: eu-central's forwarder signs its call of cn-east's $channels.accept over the link", async () => {
		const sent = await eu.broker.sendToChannel("payment.made", { amount: 42 }, { region: "cn-east" });
		expect(sent).toMatchObject({ region: "cn-east", outbox: true });
		await expect.poll(() => runs.filter(r => r.id === sent.id).map(r => r.payload.amount), { timeout: 15_000 }).toEqual([42]);
	});
});
