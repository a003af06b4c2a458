import { createHmac, hkdfSync } from "node:crypto";
import type { Context, ServiceBroker } from "moleculer";
import { parsePiiKeys } from "../kernel/sealing.ts";

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

/**
 * Stores `event` for the audit log. A record that cannot be stored is logged, never the failure
 * of the act it records (the act has happened).
 */
export async function audit(broker: ServiceBroker, ctx: Context | undefined, event: AuditEvent): Promise<void> {
	const { clientIp, detail, ...rest } = event;
	const ipHash = clientIp ? hashClientIp(clientIp) : undefined;
	// A detail too large for a channel message would lose the record: it is kept as its size.
	const bytes = detail === undefined ? 0 : Buffer.byteLength(JSON.stringify(detail));
	const kept = bytes > MAX_DETAIL_BYTES ? { truncated: true, bytes } : detail;
	const message: AuditMessage = { at: Date.now(), ...rest, ...(kept ? { detail: kept } : {}), ...(ipHash ? { ipHash } : {}) };
	try {
		await broker.sendToChannel(AUDIT_CHANNEL, message, ctx ? { ctx } : {});
	} catch (err) {
		broker.logger.warn(`audit record ${event.action} of ${event.actor} not stored: ${(err as Error).message}`);
	}
}
