import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";
import type { Middleware, ServiceBroker } from "moleculer";
import { Errors } from "moleculer";
import type { CapabilityKeys } from "./capability-keys.ts";
import type { ReplayRefusal } from "./replay-guard.ts";
import { ReplayGuard } from "./replay-guard.ts";

/**
 * Signed internal calls. NATS subject permissions cannot guard single actions: Moleculer sends
 * every request for a node to MOL-<namespace>.REQ.<nodeID>, whatever the action. So an action or
 * event marked `restricted: "<capability>"` runs for a remote caller only when the request (or
 * event) carries an HMAC by a key of that capability, over the kind, name, params (event data),
 * meta, sender, target node, timestamp and a nonce; each nonce is admitted once within the window.
 * Only restricted traffic is signed and checked: any other packet costs one map lookup. Calls
 * within one process (the same broker) are not checked: they never cross the bus.
 */

export const CAPABILITY_HEADER = "edgehome-capability";
/** Clock difference and transit time a signed message may have (nodes run NTP). */
export const CAPABILITY_WINDOW_MS = 30_000;
/** Nonces remembered per node; a node receiving more restricted messages than this per minute refuses them. */
export const CAPABILITY_MAX_NONCES = 100_000;

export type CapabilityRefusal = "missing" | "invalid" | "wrong target" | ReplayRefusal;

export class CapabilityRequiredError extends Errors.MoleculerClientError {
	constructor(name: string, capability: string, reason: CapabilityRefusal) {
		super(`${name} is restricted to holders of the "${capability}" capability (${reason})`, 403, "CAPABILITY_REQUIRED", { name, capability, reason });
	}
}

export class CapabilityBusyError extends Errors.MoleculerError {
	constructor(name: string) {
		super(`too many restricted calls to remember; ${name} refused`, 503, "CAPABILITY_BUSY", { name, retryAfter: 1 });
	}
}

interface Signature {
	cap: string;
	ts: number;
	nonce: string;
	target: string;
	mac: string;
}

type Kind = "REQ" | "EVENT";

interface Payload {
	action?: string;
	event?: string;
	id?: string;
	sender?: string;
	params?: unknown;
	data?: unknown;
	meta?: Record<string, unknown>;
	headers?: Record<string, unknown>;
}

interface Packet {
	type: string;
	target: string | null;
	payload: Payload;
}

function mac(key: Buffer, kind: Kind, name: string, p: Payload, sender: string, s: Omit<Signature, "mac">): string {
	return createHmac("sha256", key)
		.update(JSON.stringify([kind, name, s.cap, sender, s.target, s.ts, s.nonce]))
		.update("\n")
		.update(JSON.stringify([kind === "REQ" ? p.params : p.data, p.meta]) ?? "")
		.digest("base64url");
}

function isSignature(v: unknown): v is Signature {
	const s = v as Signature;
	return (
		typeof s === "object" &&
		s !== null &&
		typeof s.cap === "string" &&
		Number.isSafeInteger(s.ts) &&
		typeof s.nonce === "string" &&
		s.nonce.length <= 64 &&
		typeof s.target === "string" &&
		typeof s.mac === "string" &&
		s.mac.length <= 64
	);
}

const RESTRICTED_CALLS = Symbol("restricted calls");
type Factory = ((broker: ServiceBroker) => Middleware) & { [RESTRICTED_CALLS]: true };

/** The middleware of every broker of a node, its region links included (each gets its own nonce memory). */
export function RestrictedCalls(keys: CapabilityKeys): Middleware {
	const factory = ((broker: ServiceBroker) => {
		const localActions = new Map<string, string>();
		const localEvents = new Map<string, string>();
		/** Capability of an outgoing name, from the definitions in the registry (null: none); cleared when services change. */
		const outgoing = new Map<string, string | null>();
		const guard = new ReplayGuard(CAPABILITY_WINDOW_MS, CAPABILITY_MAX_NONCES);

		function declare(into: Map<string, string>, what: string, name: string, capability: unknown): void {
			if (capability === undefined) return;
			if (typeof capability !== "string" || !capability) throw new Error(`${what} ${name}: restricted must name a capability, e.g. restricted: "grant"`);
			if (!keys.signer(capability))
				throw new Error(
					`${what} ${name} is restricted to the "${capability}" capability and this node holds no key for it: set EDGEHOME_CAPABILITY_KEYS (deploy/README.md)`
				);
			into.set(name, capability);
		}

		function capabilityOf(kind: Kind, name: string): string | null {
			const key = `${kind}\0${name}`;
			let capability = outgoing.get(key);
			if (capability === undefined) {
				const defs: { restricted?: string }[] =
					kind === "REQ"
						? (broker.registry.actions.get(name)?.endpoints ?? []).map(e => e.action)
						: broker.registry.events.getAllEndpoints(name).map(e => e.event);
				capability = defs.find(d => typeof d?.restricted === "string")?.restricted ?? null;
				outgoing.set(key, capability);
			}
			return capability;
		}

		function sign(kind: Kind, packet: Packet): void {
			const p = packet.payload;
			const name = (kind === "REQ" ? p.action : p.event) ?? "";
			const cap = capabilityOf(kind, name);
			const key = cap ? keys.signer(cap) : undefined;
			if (!cap || !key) return;
			const unsigned = { cap, ts: Date.now(), nonce: randomUUID(), target: packet.target ?? "" };
			// A copy: the headers object belongs to the caller's context, and a retry is signed anew.
			p.headers = { ...p.headers, [CAPABILITY_HEADER]: { ...unsigned, mac: mac(key, kind, name, p, broker.nodeID, unsigned) } };
		}

		function check(kind: Kind, name: string, cap: string, p: Payload): CapabilityRefusal | undefined {
			const s = p.headers?.[CAPABILITY_HEADER];
			if (s === undefined) return "missing";
			if (!isSignature(s) || s.cap !== cap || typeof p.sender !== "string") return "invalid";
			if (s.target !== broker.nodeID && !(kind === "EVENT" && s.target === "")) return "wrong target";
			const expected = Buffer.from(s.mac);
			const valid = keys.verifiers(cap).some(k => {
				const m = Buffer.from(mac(k, kind, name, p, p.sender!, s));
				return m.length === expected.length && timingSafeEqual(m, expected);
			});
			if (!valid) return "invalid";
			// Only a valid signature takes room in the nonce memory.
			const refusal = guard.admit(s.nonce, s.ts);
			if (refusal) return refusal;
			delete p.headers![CAPABILITY_HEADER];
			return undefined;
		}

		return {
			name: "RestrictedCalls",
			created(b: ServiceBroker) {
				b.localBus.on("$services.changed", () => outgoing.clear());
			},
			localAction(next: unknown, action: { name: string; restricted?: unknown }) {
				declare(localActions, "action", action.name, action.restricted);
				return next;
			},
			localEvent(next: unknown, event: { name: string; restricted?: unknown }) {
				declare(localEvents, "event", event.name, event.restricted);
				return next;
			},
			transitPublish(next: (packet: Packet) => Promise<unknown>) {
				return (packet: Packet) => {
					if (packet.type === "REQ" || packet.type === "EVENT") sign(packet.type, packet);
					return next(packet);
				};
			},
			transitMessageHandler(next: (cmd: string, packet: Packet) => Promise<boolean>) {
				return (cmd: string, packet: Packet) => {
					const p = packet.payload;
					const name = cmd === "REQ" ? p?.action : cmd === "EVENT" ? p?.event : undefined;
					const cap = name === undefined ? undefined : (cmd === "REQ" ? localActions : localEvents).get(name);
					if (cap === undefined) return next(cmd, packet);
					const refusal = check(cmd as Kind, name!, cap, p);
					if (!refusal) return next(cmd, packet);
					broker.logger.warn(`refused ${cmd === "REQ" ? "call of" : "event"} ${name} from node ${String(p.sender)}: ${refusal} "${cap}" capability`);
					if (cmd !== "REQ") return Promise.resolve(false);
					const err = refusal === "busy" ? new CapabilityBusyError(name!) : new CapabilityRequiredError(name!, cap, refusal);
					return broker.transit!.sendResponse(String(p.sender), String(p.id), p.meta ?? {}, {}, null as never, err).then(() => true);
				};
			}
		} as unknown as Middleware;
	}) as Factory;
	factory[RESTRICTED_CALLS] = true;
	return factory as unknown as Middleware;
}

/** The RestrictedCalls middleware among `middlewares`, for brokers that take no other (region links). */
export function restrictedCallsAmong(middlewares: readonly (Middleware | string)[]): Middleware[] {
	return middlewares.filter((m): m is Middleware => typeof m === "function" && RESTRICTED_CALLS in m);
}
