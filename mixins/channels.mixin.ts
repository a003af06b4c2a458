import type { Middleware, Service, ServiceBroker } from "moleculer";
import type { ChannelDeclaration } from "./channels/declaration.ts";
import { resolveDeclarations } from "./channels/declaration.ts";
import type { ForwardCall } from "./channels/outbox.ts";
import type { SendOptions, SentMessage } from "./channels/runtime.ts";
import { attachChannels, channelsOf, findChannels } from "./channels/runtime.ts";
import type { ChannelStore } from "./channels/store.ts";

declare module "moleculer" {
	interface ServiceBroker {
		/** Resolves once the message is durably stored (in this region's outbox, for another region). */
		sendToChannel(channel: string, payload: unknown, opts?: SendOptions): Promise<SentMessage>;
	}
	interface ServiceSchema {
		/** Durable channels this service consumes, by name (see mixins/channels.mixin.ts). */
		channels?: Record<string, ChannelDeclaration>;
	}
}

export interface ChannelsOptions {
	store: ChannelStore;
	/** Schemas this node does not run but whose declared `keyOf` its senders should apply. */
	known?: { name: string; channels?: Record<string, ChannelDeclaration> }[];
	/** How outbox messages reach another region; through the region runtime's links by default. */
	forward?: ForwardCall;
}

/**
 * Durable channels for every service of a broker, installed once as a middleware: a service that
 * declares `channels: { "<name>": { handler, … } }` consumes them while it runs, and
 * `broker.sendToChannel(name, payload, { key, headers, region })` stores a message for them. The
 * declaration is checked when the service is created; its consumers start after it started and
 * stop before it stops. Storage, delivery and forwarding are in mixins/channels/.
 */
export function Channels(opts: ChannelsOptions): Middleware {
	const declared = new WeakMap<Service, ReturnType<typeof resolveDeclarations>>();
	// Moleculer creates its internal services before the `created` hook: the first of the two sets up.
	const runtimeOf = (broker: ServiceBroker) => {
		const existing = findChannels(broker);
		if (existing) return existing;
		const runtime = attachChannels(broker, opts.store);
		for (const schema of opts.known ?? []) runtime.learn(resolveDeclarations(schema.name, schema.channels));
		broker.sendToChannel = (channel, payload, sendOpts) => runtime.send(channel, payload, sendOpts);
		return runtime;
	};
	return {
		name: "Channels",
		created(broker: ServiceBroker) {
			runtimeOf(broker);
		},
		serviceCreating(service: Service, schema: { name: string; version?: string | number; channels?: unknown }) {
			// The hook runs before Moleculer names the service: its full name is made here the same way.
			const version = typeof schema.version === "number" ? `v${schema.version}.` : schema.version === undefined ? "" : `${schema.version}.`;
			const declarations = resolveDeclarations(`${version}${schema.name}`, schema.channels);
			declared.set(service, declarations);
			runtimeOf(service.broker).learn(declarations);
		},
		async serviceStarted(service: Service) {
			const declarations = declared.get(service);
			if (declarations?.length) await channelsOf(service.broker).startService(service, declarations);
		},
		async serviceStopping(service: Service) {
			await channelsOf(service.broker).stopService(service);
		},
		async started(broker: ServiceBroker) {
			await channelsOf(broker).start(opts.forward);
		},
		async stopping(broker: ServiceBroker) {
			await channelsOf(broker).stop();
		}
	} as Middleware;
}
