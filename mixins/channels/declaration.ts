import type { Context, Service } from "moleculer";
import { ChannelError } from "./errors.ts";
import { assertChannelName, groupOfService, isGroupName } from "./names.ts";

/** What a service handler gets for each message. */
export interface ChannelDelivery<P = unknown> {
	id: string;
	channel: string;
	group: string;
	key?: string;
	payload: P;
	headers: Record<string, string>;
	/** 1 on the first delivery to this group. */
	attempt: number;
	/** A context carrying the sender's request id and trace headers (`meta.traceparent`): calls made with it continue the request. */
	ctx: Context<P>;
}

/** One entry of a service's `channels: { … }`. */
export interface ChannelDeclaration<P = any> {
	/** Consumer group; nodes running the same group share its messages. Default: the service's name. */
	group?: string;
	/** Messages this node handles at once for this channel (default 10). */
	maxInFlight?: number;
	/** Deliveries after the first failed one before giving up (default 3). */
	maxRetries?: number;
	/** Longest pause between deliveries of a failing message (it doubles from 100 ms up to this; default 30 s). */
	maxBackoffMs?: number;
	/** A delivery neither finished nor kept alive for this long goes to another consumer (default 30 s). */
	ackWaitMs?: number;
	/** Given up messages go to the channel's dead letters (default) or are dropped with an error log. */
	deadLettering?: { enabled: boolean };
	/** The ordering key when the sender gives none: messages with the same key are handled in order. */
	keyOf?: (payload: P) => string | undefined;
	/** Runs with the service as `this`. */
	handler: (this: Service, msg: ChannelDelivery<P>) => Promise<void> | void;
}

export interface ResolvedDeclaration {
	channel: string;
	group: string;
	maxInFlight: number;
	/** Infinity: never give up (a forwarder). */
	maxRetries: number;
	maxBackoffMs: number;
	ackWaitMs: number;
	deadLettering: boolean;
	keyOf?: (payload: unknown) => string | undefined;
	handler: (this: Service, msg: ChannelDelivery) => Promise<void> | void;
}

export const DECLARATION_LIMITS = {
	maxInFlight: { min: 1, max: 1000, default: 10 },
	maxRetries: { min: 0, max: 10_000, default: 3 },
	maxBackoffMs: { min: 100, max: 300_000, default: 30_000 },
	ackWaitMs: { min: 1000, max: 3_600_000, default: 30_000 }
} as const;

const OPTIONS = new Set(["group", "maxInFlight", "maxRetries", "maxBackoffMs", "ackWaitMs", "deadLettering", "keyOf", "handler"]);

/** Checks a service's `channels` at creation: a mistake stops the service from being created, with the channel and option named. */
export function resolveDeclarations(service: string, channels: unknown): ResolvedDeclaration[] {
	if (channels === undefined) return [];
	const fail = (message: string) => new ChannelError("INVALID_CHANNEL_DECLARATION", `service "${service}": ${message}`, { service });
	if (channels === null || typeof channels !== "object" || Array.isArray(channels)) throw fail("`channels` must be an object of channel declarations");
	return Object.entries(channels as Record<string, unknown>).map(([channel, raw]) => {
		try {
			assertChannelName(channel);
		} catch (err) {
			throw fail((err as Error).message);
		}
		const where = `channel "${channel}"`;
		const decl = (typeof raw === "function" ? { handler: raw } : raw) as Record<string, unknown>;
		if (decl === null || typeof decl !== "object") throw fail(`${where}: a declaration is an object with a handler`);
		for (const option of Object.keys(decl)) if (!OPTIONS.has(option)) throw fail(`${where}: unknown option "${option}"; known: ${[...OPTIONS].join(", ")}`);
		if (typeof decl.handler !== "function") throw fail(`${where}: handler must be a function`);
		if (decl.keyOf !== undefined && typeof decl.keyOf !== "function") throw fail(`${where}: keyOf must be a function of the payload`);
		const group = decl.group ?? groupOfService(service);
		if (!isGroupName(group)) throw fail(`${where}: group "${String(group)}" must be 1 to 64 of A-Z, a-z, 0-9 and "-"`);
		const integer = (name: keyof typeof DECLARATION_LIMITS) => {
			const { min, max, default: fallback } = DECLARATION_LIMITS[name];
			const value = decl[name] ?? fallback;
			if (!Number.isSafeInteger(value) || (value as number) < min || (value as number) > max)
				throw fail(`${where}: ${name} must be an integer from ${min} to ${max} (got ${String(value)})`);
			return value as number;
		};
		const dl = decl.deadLettering as { enabled?: unknown } | undefined;
		if (dl !== undefined && (dl === null || typeof dl !== "object" || typeof dl.enabled !== "boolean"))
			throw fail(`${where}: deadLettering must be { enabled: true | false }`);
		return {
			channel,
			group,
			maxInFlight: integer("maxInFlight"),
			maxRetries: integer("maxRetries"),
			maxBackoffMs: integer("maxBackoffMs"),
			ackWaitMs: integer("ackWaitMs"),
			deadLettering: (dl?.enabled as boolean | undefined) ?? true,
			...(decl.keyOf ? { keyOf: decl.keyOf as ResolvedDeclaration["keyOf"] } : {}),
			handler: decl.handler as ResolvedDeclaration["handler"]
		};
	});
}
