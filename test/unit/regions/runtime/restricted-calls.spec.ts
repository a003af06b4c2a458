import { randomBytes } from "node:crypto";
import type { Middleware, ServiceSchema } from "moleculer";
import { ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CapabilityKeys } from "../../../../regions/runtime/capability-keys.ts";
import { RestrictedCalls } from "../../../../regions/runtime/restricted-calls.ts";
import { failureOf, within } from "../../../harness/waiting.ts";

/**
 * Brokers of one namespace on Moleculer's in-process transporter, as in the embedded cluster: the
 * packets cross the same transit (serialised, on a shared bus) as over NATS.
 */
const namespace = `restricted-${randomBytes(4).toString("hex")}`;
const keyOf = () => randomBytes(32).toString("base64");
const keys = `mint:${keyOf()}`;
const minted: unknown[] = [];
const changes: unknown[] = [];

const vault: ServiceSchema = {
	name: "vault",
	actions: {
		mint: {
			restricted: "mint",
			params: { $$strict: true, userId: "string" },
			handler(ctx) {
				minted.push(ctx.params);
				return { token: `t-${minted.length}` };
			}
		},
		echo: {
			params: { $$strict: true, text: "string" },
			handler: ctx => ctx.params
		}
	},
	events: {
		"vault.changed": {
			restricted: "mint",
			params: { $$strict: true, n: "number" },
			handler(ctx) {
				changes.push(ctx.params);
			}
		}
	}
};

const brokers: ServiceBroker[] = [];
function broker(nodeID: string, capabilities?: CapabilityKeys): ServiceBroker {
	const middlewares: Middleware[] = capabilities ? [RestrictedCalls(capabilities)] : [];
	const b = new ServiceBroker({ namespace, nodeID, transporter: "Fake", logger: false, middlewares });
	brokers.push(b);
	return b;
}

const victim = broker("victim", CapabilityKeys.parse(keys));
const twin = broker("twin", CapabilityKeys.parse(keys));
const holder = broker("holder", CapabilityKeys.parse(keys));
const intruder = broker("intruder");
const forger = broker("forger", CapabilityKeys.parse(`mint:${keyOf()}`));
victim.createService(vault);
twin.createService({ ...vault, name: "vault" });

/** Raw packets on the in-process bus, as anyone on the bus sees them. */
const bus = (
	globalThis as unknown as {
		bus: { on(t: string, f: (d: Buffer) => void): void; off(t: string, f: (d: Buffer) => void): void; emit(t: string, d: Buffer): void };
	}
).bus;
const topic = (cmd: string, node: string) => `MOL-${namespace}.${cmd}.${node}`;
function record(cmd: string, node: string): { packets: Buffer[]; stop(): void } {
	const packets: Buffer[] = [];
	const f = (d: Buffer) => packets.push(d);
	bus.on(topic(cmd, node), f);
	return { packets, stop: () => bus.off(topic(cmd, node), f) };
}

beforeAll(async () => {
	await Promise.all(brokers.map(b => b.start()));
	await Promise.all(
		[holder, intruder, forger].map(b =>
			within(async () => b.registry.getServiceList({ onlyAvailable: true }).filter(s => s.name === "vault").length === 2, 5000)
		)
	);
});

afterAll(async () => {
	await Promise.all(brokers.map(b => b.stop()));
});

describe("restricted actions over the bus", () => {
	it("run for a node holding the capability key", async () => {
		const before = minted.length;
		await expect(holder.call("vault.mint", { userId: "u1" }, { nodeID: "victim" })).resolves.toEqual({ token: expect.any(String) });
		expect(minted.length).toBe(before + 1);
	});

	it("refuse a node without the key with CAPABILITY_REQUIRED (403), and run nothing", async () => {
		const before = minted.length;
		const err = await failureOf(intruder.call("vault.mint", { userId: "u1" }, { nodeID: "victim" }));
		expect(err).toMatchObject({ type: "CAPABILITY_REQUIRED", code: 403, data: { name: "vault.mint", capability: "mint", reason: "missing" } });
		expect(minted.length).toBe(before);
	});

	it("refuse a node signing with a key of its own", async () => {
		const before = minted.length;
		expect(await failureOf(forger.call("vault.mint", { userId: "u1" }, { nodeID: "victim" }))).toMatchObject({
			type: "CAPABILITY_REQUIRED",
			data: { reason: "invalid" }
		});
		expect(minted.length).toBe(before);
	});

	it("leave every other action alone", async () => {
		await expect(intruder.call("vault.echo", { text: "hi" }, { nodeID: "victim" })).resolves.toEqual({ text: "hi" });
	});

	it("refuse a signed request sent again (replay), changed (other params), or sent to another node", async () => {
		const sent = record("REQ", "victim");
		const answers = record("RES", "holder");
		await holder.call("vault.mint", { userId: "u2" }, { nodeID: "victim" });
		sent.stop();
		expect(sent.packets).toHaveLength(1);
		const original = sent.packets[0]!;
		const before = minted.length;
		const changed = JSON.parse(original.toString());
		changed.params.userId = "someone-else";

		bus.emit(topic("REQ", "victim"), original);
		bus.emit(topic("REQ", "victim"), Buffer.from(JSON.stringify(changed)));
		bus.emit(topic("REQ", "twin"), original);
		await within(async () => answers.packets.length === 4, 2000);
		answers.stop();
		const reasons = answers.packets.slice(1).map(p => JSON.parse(p.toString()).error);
		expect(reasons.map(e => [e.type, e.code, e.data.reason])).toEqual([
			["CAPABILITY_REQUIRED", 403, "replayed"],
			["CAPABILITY_REQUIRED", 403, "invalid"],
			["CAPABILITY_REQUIRED", 403, "wrong target"]
		]);
		expect(minted.length).toBe(before);
	});
});

describe("restricted events over the bus", () => {
	it("reach their handler from a key holder, and a forged one from a node without the key is dropped", async () => {
		await intruder.broadcast("vault.changed", { n: 1 });
		await forger.broadcast("vault.changed", { n: 2 });
		await holder.broadcast("vault.changed", { n: 3 });
		// Each handler is reached in order of sending: once the holder's event arrived twice (victim and twin), the others had their chance.
		await within(async () => changes.filter(c => (c as { n: number }).n === 3).length === 2, 2000);
		expect(changes).toEqual([{ n: 3 }, { n: 3 }]);
	});
});

describe("a node that runs a restricted action", () => {
	it("does not start without the capability's key", () => {
		const lacking = new ServiceBroker({
			namespace: `${namespace}-lacking`,
			nodeID: "lacking",
			transporter: "Fake",
			logger: false,
			middlewares: [RestrictedCalls(CapabilityKeys.none())]
		});
		expect(() => lacking.createService(vault)).toThrow(
			/vault\.mint is restricted to the "mint" capability and this node holds no key for it: set EDGEHOME_CAPABILITY_KEYS/
		);
	});
});
