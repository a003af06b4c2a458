import { connect } from "nats";
import { afterAll, describe, expect, it } from "vitest";
import { ChannelError } from "../../../../mixins/channels/errors.ts";
import { openJetStreamChannels } from "../../../../mixins/channels/jetstream-store.ts";
import { deleteChannelStreams } from "../../../harness/channels-streams.ts";
import { freePort } from "../../../harness/free-port.ts";
import { REAL, runId } from "../../../harness/real-servers.ts";
import { channelStoreContract } from "../../../unit/mixins/channels/contract.ts";

const namespace = `t${runId()}`;

// After every suite of the file: the last one makes a stream of its own.
afterAll(() => deleteChannelStreams(namespace));

channelStoreContract("NATS JetStream", () => openJetStreamChannels({ servers: REAL.nats, namespace, name: "channels-contract" }));

describe("JetStream channels, unreachable", () => {
	it("fails to open with CHANNEL_UNAVAILABLE when nothing listens", async () => {
		const err = await openJetStreamChannels({ servers: `nats://127.0.0.1:${await freePort()}`, namespace, timeoutMs: 1000 }).catch(e => e);
		expect(err).toBeInstanceOf(ChannelError);
		expect((err as ChannelError).type).toBe("CHANNEL_UNAVAILABLE");
	});
});

describe("JetStream channels, a foreign message on a channel's subject", () => {
	it("sets it aside, says so, and keeps delivering", async () => {
		const store = await openJetStreamChannels({ servers: REAL.nats, namespace });
		const nc = await connect({ servers: REAL.nats });
		try {
			await store.declare("foreign.x", "g");
			const errors: string[] = [];
			const seen: string[] = [];
			const consumption = await store.consume("foreign.x", "g", { maxInFlight: 4, ackWaitMs: 1000, onError: e => errors.push(e.message) }, async d => {
				seen.push(d.message.id);
				await d.ack();
			});
			await nc.jetstream().publish(`ch.${namespace}.foreign.x.u`, "not a channel message");
			await store.publish({ id: "after-foreign", channel: "foreign.x", payload: "{}", headers: {} });
			await expect.poll(() => seen, { timeout: 5000 }).toEqual(["after-foreign"]);
			expect(errors).toEqual([expect.stringMatching(/channel foreign\.x: message \d+ is not a channel message/)]);
			await consumption.stop();
		} finally {
			await nc.close();
			await store.close();
		}
	});
});

describe("JetStream channels, the dead-letter stream", () => {
	it("is made by a channel's first dead letter: a channel without one leaves no stream for them", async () => {
		const store = await openJetStreamChannels({ servers: REAL.nats, namespace });
		const nc = await connect({ servers: REAL.nats });
		const streams = async () => {
			const names: string[] = [];
			for await (const name of (await nc.jetstreamManager()).streams.names()) if (name.endsWith(`_${namespace}_lazy_dlq`)) names.push(name);
			return names.sort();
		};
		try {
			await store.declare("lazy.dlq", "g");
			await store.publish({ id: "poison", channel: "lazy.dlq", payload: "{}", headers: {} });
			expect(await streams()).toEqual([`CH_${namespace}_lazy_dlq`]);
			const consumption = await store.consume("lazy.dlq", "g", { maxInFlight: 1, ackWaitMs: 1000 }, d =>
				d.deadLetter({ error: "refused", attempts: d.attempt })
			);
			await expect.poll(() => store.deadLetters("lazy.dlq", 10), { timeout: 5000 }).toEqual([expect.objectContaining({ id: "poison", error: "refused" })]);
			await consumption.stop();
			expect(await streams()).toEqual([`CHDLQ_${namespace}_lazy_dlq`, `CH_${namespace}_lazy_dlq`]);
		} finally {
			await nc.close();
			await store.close();
		}
	});
});
