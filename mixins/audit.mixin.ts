import { createHmac, hkdfSync, randomUUID } from "node:crypto";
import type { Context, ServiceBroker } from "moleculer";
import { parsePiiKeys } from "../kernel/sealing.ts";
import { withTraceHeaders } from "./channels/trace-headers.ts";

/**
 * What producers use to leave a record in the audit log (services/sv-log): one call that stores
 * the record in the durable channel `audit.record` of this region, never a call to sv-log in the
 * request's path. The channel carries the sender's request id and trace along with it.
 */

/** The largest detail a record is sent with (sv-log keeps less: EDGEHOME_LOG_MAX_DETAIL_BYTES). */
const MAX_DETAIL_BYTES = 65_536;

/** The channel sv-log takes records from. */
export const AUDIT_CHANNEL = "audit.record";

export type AuditOutcome = "success" | "failure" | "refused";

/** An act to record: who did what to whom, and how it ended. */
export interface AuditEvent {
	/** A user id, or `operator:<name>` / `system:<service>` for acts no user made. */
	actor: string;
	/** `<area>.<verb>`, e.g. `auth.login`, `money.adjust`. */
	action: string;
	target?: string;
	outcome: AuditOutcome;
	/** Small and flat: sv-log redacts secrets, e-mail and phone numbers from it whatever is sent. */
	detail?: Record<string, unknown>;
	/** The client's IP, clear: only its keyed hash leaves this process. */
	clientIp?: string;
}

/** The channel's payload: an event with its time and the client IP as a keyed hash (the channel message's id names the record). */
export interface AuditMessage {
	at: number;
	actor: string;
	action: string;
	target?: string;
	outcome: AuditOutcome;
	detail?: Record<string, unknown>;
	ipHash?: string;
}

/** The purposes of the keys the audit log derives from the configured EDGEHOME_PII_KEYS (HKDF, one label each). */
const PURPOSES = { ip: "edgehome audit client ip v1", checkpoint: "edgehome audit checkpoint v1" } as const;

/** Per purpose, the keys by key id, the signing one first; undefined without EDGEHOME_PII_KEYS. */
export function auditKeys(purpose: keyof typeof PURPOSES, env: NodeJS.ProcessEnv = process.env): { kid: string; key: Buffer }[] | undefined {
	if (!env.EDGEHOME_PII_KEYS) return undefined;
	const keys = parsePiiKeys(env.EDGEHOME_PII_KEYS);
	const ordered = [keys.current, ...[...keys.sealing.keys()].filter(k => k !== keys.current)];
	return ordered.map(kid => ({ kid, key: Buffer.from(hkdfSync("sha256", keys.sealing.get(kid)!, Buffer.alloc(0), PURPOSES[purpose], 32)) }));
}

let ipKey: Buffer | null | undefined;

/** The client IP as HMAC-SHA256 under the audit key: the same IP gives the same hash, which tells nothing of the IP. */
export function hashClientIp(ip: string): string | undefined {
	if (ipKey === undefined) ipKey = auditKeys("ip")?.[0]?.key ?? null;
	return ipKey ? createHmac("sha256", ipKey).update(ip).digest("hex") : undefined;
}

/** Who made the call: the user a gateway put in `meta.user`, else `system:<service>` (an operator's console, a job). */
export function actorOf(ctx: Context, service: string): string {
	const id = (ctx.meta as { user?: { id?: unknown } | null }).user?.id;
	return typeof id === "string" ? id : `system:${service}`;
}

function auditMessage(event: AuditEvent, maxDetailBytes: number): AuditMessage {
	const { clientIp, detail, ...rest } = event;
	const ipHash = clientIp ? hashClientIp(clientIp) : undefined;
	// A detail too large for where the record goes would lose it: it is kept as its size.
	const bytes = detail === undefined ? 0 : Buffer.byteLength(JSON.stringify(detail));
	const kept = bytes > maxDetailBytes ? { truncated: true, bytes } : detail;
	return { at: Date.now(), ...rest, ...(kept ? { detail: kept } : {}), ...(ipHash ? { ipHash } : {}) };
}

/**
 * Stores `event` for the audit log. A record that cannot be stored is logged, never the failure
 * of the act it records (the act has happened).
 */
export async function audit(broker: ServiceBroker, ctx: Context | undefined, event: AuditEvent): Promise<void> {
	try {
		await broker.sendToChannel(AUDIT_CHANNEL, auditMessage(event, MAX_DETAIL_BYTES), ctx ? { ctx } : {});
	} catch (err) {
		broker.logger.warn(`audit record ${event.action} of ${event.actor} not stored: ${(err as Error).message}`);
	}
}

/**
 * A record of a write, to keep in the service's own transactional outbox with the write: it exists
 * exactly when the write committed, and survives the bus being down. Its message id is fixed now,
 * so that a relay sending it twice stores it once; the request's id and trace go with it.
 */
export interface HeldAuditRecord {
	id: string;
	headers: Record<string, string>;
	record: AuditMessage;
}

export function holdAuditRecord(ctx: Context | undefined, event: AuditEvent, maxDetailBytes: number): HeldAuditRecord {
	return { id: randomUUID(), headers: withTraceHeaders({}, ctx), record: auditMessage(event, Math.min(maxDetailBytes, MAX_DETAIL_BYTES)) };
}

/** Sends a held record on, to `where.region`'s log if not this one's; a failure is the caller's to retry (an outbox keeps the record until this succeeds). */
export async function sendHeldAuditRecord(broker: ServiceBroker, held: HeldAuditRecord, where: { region?: string } = {}): Promise<void> {
	await broker.sendToChannel(AUDIT_CHANNEL, held.record, { id: held.id, headers: held.headers, ...where });
}
