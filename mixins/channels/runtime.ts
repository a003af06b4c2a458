import { randomUUID } from "node:crypto";
import type { Context, Service, ServiceBroker } from "moleculer";
import { findRegionRuntime } from "../../regions/runtime/region-runtime.ts";
import { consumed, published, publishSpan } from "../../regions/runtime/tracing/channel-spans.ts";
import { startConsumer } from "./consumer.ts";
import type { ChannelDelivery, ResolvedDeclaration } from "./declaration.ts";
import { ChannelError } from "./errors.ts";
import { assertChannelName, assertHeaders, assertKey, assertMessageId, encodePayload, MAX_PAYLOAD_BYTES } from "./names.ts";
import type { ForwardCall } from "./outbox.ts";
import { FORWARDER_SETTINGS, forwarded, linkForwarder, OUTBOX_PREFIX, outboxChannel, regionOfOutbox, TARGET_HEADER } from "./outbox.ts";
import { ChannelStats } from "./stats.ts";
import type { ChannelStore, Consumption } from "./store.ts";
import { contextOf, TRACEPARENT_HEADER, withTraceHeaders } from "./trace-headers.ts";

export interface SendOptions {
	/** Messages with the same key are handled in order. Default: the channel's declared keyOf(payload), if any. */
	key?: string;
	headers?: Record<string, string>;
	/** Another region's channel: stored in this region's outbox first, forwarded when that region is reachable. */
	region?: string;
	/** The context whose request id and trace travel with the message (default: the request being handled). */
	ctx?: Context;
	/** The message's id, fixed by a sender that may send it again (an outbox relay): the channel stores it once. Default: a new UUID. */
	id?: string;
}

export interface SentMessage {
	id: string;
	channel: string;
	region: string;
	/** True when it waits in this region's outbox for another region. */
	outbox: boolean;
}

/** A failed handler waits 100 ms, 200 ms, 400 ms … up to its declaration's `maxBackoffMs` before its next delivery. */
const RETRY_BASE_MS = 100;
/** How long a forwarder that could not start waits before trying again. */
const FORWARDER_RESTART_MS = 2000;
/** How often this node samples the pending count of its groups into the metrics. */
const PENDING_SAMPLE_MS = 5000;

interface Running {
	stats: ChannelStats;
	consumption: Consumption;
}

/** Everything channel-related on one broker: sending, the consumers of its services, the forwarders of its outboxes. */
export class ChannelsRuntime {
	readonly store: ChannelStore;
	readonly stats: ChannelStats[] = [];
	private readonly broker: ServiceBroker;
	private readonly keyOf = new Map<string, (payload: unknown) => string | undefined>();
	private readonly byService = new Map<Service, Running[]>();
	private readonly forwarders: Running[] = [];
	private readonly outboxes = new Map<string, Promise<void>>();
	/** Set while the runtime runs: how outbox messages are sent on, and the regions whose outbox has a forwarder. */
	private forward: ForwardCall | undefined;
	private readonly forwarding = new Set<string>();
	private sampler: NodeJS.Timeout | undefined;
	private readonly starting: Promise<void>[] = [];
	private stopping = false;

	constructor(broker: ServiceBroker, store: ChannelStore) {
		this.broker = broker;
		this.store = store;
	}

	get region(): string | undefined {
		return findRegionRuntime(this.broker)?.has("region") ? findRegionRuntime(this.broker)!.region.id : undefined;
	}

	/** Remembers a declared keyOf, so this node's senders key the channel's messages like its consumers expect. */
	learn(declarations: ResolvedDeclaration[]): void {
		for (const d of declarations) if (d.keyOf && !this.keyOf.has(d.channel)) this.keyOf.set(d.channel, d.keyOf);
	}

	async send(channel: string, payload: unknown, opts: SendOptions = {}): Promise<SentMessage> {
		assertChannelName(channel);
		assertKey(opts.key);
		if (opts.headers !== undefined) assertHeaders(opts.headers);
		const text = encodePayload(channel, payload);
		const key = opts.key ?? this.keyOf.get(channel)?.(payload);
		assertKey(key);
		if (opts.id !== undefined) assertMessageId(opts.id);
		const id = opts.id ?? randomUUID();
		const span = publishSpan(this.store.kind, channel, id, opts.ctx);
		const headers = withTraceHeaders(opts.headers ?? {}, opts.ctx, span);
		const own = this.region;
		const base = { id, payload: text, ...(key === undefined ? {} : { key }) };
		if (opts.region !== undefined && opts.region !== own) {
			const target = opts.region;
			const regions = findRegionRuntime(this.broker)?.has("regions") ? findRegionRuntime(this.broker)!.regions.map(r => r.id) : [];
			if (!regions.includes(target))
				throw new ChannelError("UNKNOWN_REGION", `no region "${target}"; known: ${regions.join(", ") || "none (not a region node)"}`, {
					region: target
				});
			span?.addTags({ otel: { ...span.tags.otel, "edgehome.channel.region": target } });
			return published(span, async () => {
				await this.declareOutbox(target);
				await this.store.publish({ ...base, channel: outboxChannel(target), headers: { ...headers, [TARGET_HEADER]: channel } });
				this.forwardTo(target);
				return { id, channel, region: target, outbox: true };
			});
		}
		return published(span, async () => {
			await this.store.publish({ ...base, channel, headers });
			return { id, channel, region: own ?? "", outbox: false };
		});
	}

	/** A message forwarded from another region's outbox: stored here under its own id, once. */
	async accept(message: { channel: string; id: string; key?: string; headers: Record<string, string>; payload: string }): Promise<{ duplicate: boolean }> {
		assertChannelName(message.channel);
		assertMessageId(message.id);
		assertKey(message.key);
		assertHeaders(message.headers);
		const bytes = Buffer.byteLength(message.payload);
		if (bytes > MAX_PAYLOAD_BYTES)
			throw new ChannelError("PAYLOAD_TOO_LARGE", `the payload is ${bytes} bytes; the limit is ${MAX_PAYLOAD_BYTES}`, { bytes, limit: MAX_PAYLOAD_BYTES });
		return this.store.publish(message);
	}

	async startService(service: Service, declarations: ResolvedDeclaration[]): Promise<void> {
		const running: Running[] = [];
		this.byService.set(service, running);
		for (const decl of declarations) {
			const stats = new ChannelStats(this.broker, decl.channel, decl.group);
			const caller = `channel:${decl.channel}`;
			const consumption = await startConsumer(
				this.store,
				{ ...decl, backoff: { baseMs: RETRY_BASE_MS, maxMs: decl.maxBackoffMs } },
				async delivery => {
					const { message } = delivery;
					const payload = JSON.parse(message.payload) as unknown;
					const ctx = contextOf(this.broker, payload, message.headers, caller);
					const msg: ChannelDelivery = {
						id: message.id,
						channel: decl.channel,
						group: decl.group,
						payload,
						headers: message.headers,
						attempt: delivery.attempt,
						ctx,
						...(message.key === undefined ? {} : { key: message.key })
					};
					const traceparent = message.headers[TRACEPARENT_HEADER];
					const delivered = { store: this.store.kind, channel: decl.channel, group: decl.group, id: message.id, attempt: delivery.attempt, traceparent };
					await consumed(ctx, delivered, async () => decl.handler.call(service, msg));
				},
				stats,
				service.logger
			);
			running.push({ stats, consumption });
			this.stats.push(stats);
		}
	}

	async stopService(service: Service): Promise<void> {
		const running = this.byService.get(service) ?? [];
		this.byService.delete(service);
		await Promise.all(running.map(r => r.consumption.stop()));
	}

	/**
	 * Starts the pending samples and a forwarder for each outbox this region already has (messages
	 * may wait in it from before a restart); the first message for another region makes its outbox
	 * and forwarder then. A forwarder whose store does not answer yet is started again until it
	 * does: the node does not wait for it, as nothing but other regions' deliveries depend on it.
	 */
	async start(forward?: ForwardCall): Promise<void> {
		this.stopping = false;
		const runtime = findRegionRuntime(this.broker);
		if (runtime?.has("region") && runtime.has("regions")) {
			this.forward = forward ?? linkForwarder((region, action, params, opts) => runtime.call(region, action, params, opts));
			this.starting.push(this.resumeForwarders(runtime.regions.map(r => r.id).filter(id => id !== runtime.region.id)));
		}
		if (this.broker.isMetricsEnabled()) {
			this.sampler = setInterval(() => void this.samplePending(), PENDING_SAMPLE_MS);
			this.sampler.unref();
		}
	}

	async stop(): Promise<void> {
		this.stopping = true;
		this.forward = undefined;
		this.forwarding.clear();
		clearInterval(this.sampler);
		await Promise.all(this.starting.splice(0));
		const all = [...this.forwarders.splice(0), ...[...this.byService.values()].flat()];
		this.byService.clear();
		await Promise.all(all.map(r => r.consumption.stop()));
	}

	/** A forwarder for each existing outbox of a known region; the store is asked again until it answers. */
	private async resumeForwarders(regions: string[]): Promise<void> {
		while (!this.stopping) {
			try {
				for (const outbox of await this.store.declaredWith(OUTBOX_PREFIX)) {
					const region = regionOfOutbox(outbox);
					if (regions.includes(region)) this.forwardTo(region);
				}
				return;
			} catch (err) {
				this.broker.logger.warn(`channels: cannot list this region's outboxes yet (${(err as Error).message}); trying again in ${FORWARDER_RESTART_MS} ms`);
				await new Promise(r => setTimeout(r, FORWARDER_RESTART_MS).unref());
			}
		}
	}

	/** Starts the forwarder of `region`'s outbox once while the runtime runs; before start, start() finds the outbox. */
	private forwardTo(region: string): void {
		if (!this.forward || this.stopping || this.forwarding.has(region)) return;
		this.forwarding.add(region);
		this.starting.push(this.startForwarder(region, this.forward));
	}

	private async startForwarder(region: string, send: ForwardCall): Promise<void> {
		const channel = outboxChannel(region);
		const stats = new ChannelStats(this.broker, channel, FORWARDER_SETTINGS.group);
		this.stats.push(stats);
		while (!this.stopping) {
			try {
				await this.declareOutbox(region);
				const consumption = await startConsumer(
					this.store,
					{ ...FORWARDER_SETTINGS, channel },
					d => send(region, forwarded(d.message)).then(() => undefined),
					stats,
					this.broker.logger
				);
				if (this.stopping) await consumption.stop();
				else this.forwarders.push({ stats, consumption });
				return;
			} catch (err) {
				this.broker.logger.warn(
					`channels: the forwarder to ${region} cannot start yet (${(err as Error).message}); trying again in ${FORWARDER_RESTART_MS} ms`
				);
				await new Promise(r => setTimeout(r, FORWARDER_RESTART_MS).unref());
			}
		}
	}

	private declareOutbox(region: string): Promise<void> {
		let declared = this.outboxes.get(region);
		if (!declared) {
			declared = this.store.declare(outboxChannel(region));
			declared.catch(() => this.outboxes.delete(region));
			this.outboxes.set(region, declared);
		}
		return declared;
	}

	private async samplePending(): Promise<void> {
		for (const stats of this.stats) {
			const pending = await this.store.pending(stats.counts.channel, stats.counts.group).catch(() => undefined);
			if (pending !== undefined) stats.pending(pending);
		}
	}
}

const runtimes = new WeakMap<ServiceBroker, ChannelsRuntime>();

export function attachChannels(broker: ServiceBroker, store: ChannelStore): ChannelsRuntime {
	const runtime = new ChannelsRuntime(broker, store);
	runtimes.set(broker, runtime);
	return runtime;
}

export function findChannels(broker: ServiceBroker): ChannelsRuntime | undefined {
	return runtimes.get(broker);
}

export function channelsOf(broker: ServiceBroker): ChannelsRuntime {
	const runtime = runtimes.get(broker);
	if (!runtime) throw new Error(`broker ${broker.nodeID} has no channels (the Channels middleware is not installed)`);
	return runtime;
}
