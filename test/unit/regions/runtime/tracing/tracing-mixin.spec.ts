import type { Context, ServiceSchema } from "moleculer";
import { ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tracingMixin } from "../../../../../mixins/tracing.mixin.ts";
import type { ProcessTracing } from "../../../../../regions/runtime/tracing/process-sdk.ts";
import type { OtlpReceiver } from "../../../../harness/otlp-receiver.ts";
import { startOtlpReceiver } from "../../../../harness/otlp-receiver.ts";
import { within } from "../../../../harness/waiting.ts";
import { tracedBroker, traceTo } from "./traced-broker.ts";

let receiver: OtlpReceiver;
let tracing: ProcessTracing;
let broker: ServiceBroker;

const notes: ServiceSchema = {
	name: "notes",
	mixins: [
		tracingMixin({
			attributes: {
				add: (ctx: Context<{ kind: string; email: string; phone: string }>) => ({
					"edgehome.note.kind": ctx.params.kind,
					"edgehome.note.author": ctx.params.email,
					"edgehome.note.phone": ctx.params.phone,
					"edgehome.note.callback": `call ${ctx.params.phone}`,
					"note.kind": "outside the namespace"
				})
			}
		})
	],
	actions: {
		// `home` as a home-routed action declares it; the router is not needed to read it here.
		add: { home: "userId", params: { userId: "string", kind: "string", email: "string", phone: "string" }, handler: () => true },
		count: { home: { param: "userId", readonly: true }, params: { userId: "string" }, handler: () => 0 }
	}
};

beforeAll(async () => {
	receiver = await startOtlpReceiver();
	tracing = traceTo(receiver, "eu-central");
	broker = tracedBroker("eu-central", "eu-central-mixin");
	broker.createService(notes);
	await broker.start();
});

afterAll(async () => {
	await broker?.stop();
	await tracing?.stop();
	await receiver?.stop();
});

describe("tracingMixin", () => {
	it("puts the home routing facts and the service's own attributes on its spans, and nothing personal", async () => {
		const $home = { epoch: 3, originRegion: "cn-east", hops: 1 };
		await broker.call("notes.add", { userId: "01HZY3T5W8K9Q2M4N6P7R8S9TV", kind: "memo", email: "ann@example.com", phone: "+4989123456" }, { meta: { $home } });
		await broker.call("notes.count", { userId: "01HZY3T5W8K9Q2M4N6P7R8S9TV" }, { meta: { $home: { ...$home, hops: 0, originRegion: "eu-central" } } });
		await within(() => receiver.spans.length === 2, 5000);
		const [add, count] = receiver.spans;
		expect(add!.attributes).toEqual({
			"rpc.system": "moleculer",
			"rpc.service": "notes",
			"rpc.method": "add",
			"edgehome.region": "eu-central",
			"edgehome.node": "eu-central-mixin",
			"edgehome.user.home_region": "eu-central",
			"edgehome.user.epoch": 3,
			"edgehome.route.hops": 1,
			"edgehome.route.origin_region": "cn-east",
			"edgehome.route.forwarded": true,
			"edgehome.note.kind": "memo"
		});
		expect(count!.attributes).toMatchObject({ "edgehome.route.hops": 0, "edgehome.route.forwarded": false });
		expect(JSON.stringify(receiver.spans)).not.toMatch(/ann@example|4989123456|01HZY3T5W8K9Q2M4N6P7R8S9TV/);
	});

	it("refuses span attributes declared for an action the service does not have", () => {
		const other = new ServiceBroker({ logger: false });
		expect(() => other.createService({ name: "typo", mixins: [tracingMixin({ attributes: { ad: () => ({}) } })], actions: { add: () => true } })).toThrow(
			"tracingMixin of typo: no action ad to declare span attributes for"
		);
	});
});
