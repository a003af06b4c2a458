import { createHmac, timingSafeEqual } from "node:crypto";
import type { ReplayRefusal } from "../../regions/runtime/replay-guard.ts";
import { ReplayGuard } from "../../regions/runtime/replay-guard.ts";

/**
 * How a notice webhook is signed, and how its receiver checks it: HMAC-SHA256 with the shared
 * secret over `<timestamp>.<body>`, the timestamp (Unix seconds) and the delivery id (the notice's
 * id, the same on every retry) in headers of their own.
 */

export const TIMESTAMP_HEADER = "x-edgehome-timestamp";
export const DELIVERY_HEADER = "x-edgehome-delivery";
export const SIGNATURE_HEADER = "x-edgehome-signature";
/** The one scheme so far; a receiver can tell a later one apart. */
const SCHEME = "v1=";
/** The secret's least length, as for every HMAC key of the project. */
export const MIN_WEBHOOK_SECRET_BYTES = 32;
/** How far a request's timestamp may be from the receiver's clock. */
export const WEBHOOK_TOLERANCE_MS = 5 * 60_000;

export function webhookSignature(secret: string, timestamp: number, body: string | Buffer): string {
	return SCHEME + createHmac("sha256", secret).update(`${timestamp}.`).update(body).digest("hex");
}

export type WebhookRefusal = "unsigned" | "invalid signature" | ReplayRefusal;
export type WebhookVerdict = { ok: true; deliveryId: string; timestamp: number } | { ok: false; reason: WebhookRefusal };

type Headers = Record<string, string | string[] | undefined>;

const single = (headers: Headers, name: string): string | undefined => {
	const value = headers[name];
	return typeof value === "string" ? value : undefined;
};

/**
 * A receiver's check of a notice webhook: the signature (compared in constant time), a timestamp
 * within five minutes, and a delivery id not admitted before (a replay). An id is remembered as
 * long as a copy of its request could pass the timestamp check (memory, bounded); beyond that, a
 * resent delivery is the receiver's idempotency concern (the delivery id is stable). A receiver
 * that fails to handle an admitted delivery calls `forget`, so the sender's retry is admitted.
 */
export class WebhookVerifier {
	private readonly secret: string;
	private readonly guard: ReplayGuard;

	constructor(secret: string, opts: { toleranceMs?: number; maxRemembered?: number } = {}) {
		this.secret = secret;
		this.guard = new ReplayGuard(opts.toleranceMs ?? WEBHOOK_TOLERANCE_MS, opts.maxRemembered ?? 100_000);
	}

	/** `headers` as Node gives them (lower-case names); `body` exactly as received. */
	verify(headers: Headers, body: string | Buffer, now = Date.now()): WebhookVerdict {
		const stamp = single(headers, TIMESTAMP_HEADER);
		const deliveryId = single(headers, DELIVERY_HEADER);
		const signature = single(headers, SIGNATURE_HEADER);
		if (!stamp || !deliveryId || !signature || !/^\d{1,12}$/.test(stamp)) return { ok: false, reason: "unsigned" };
		const timestamp = Number(stamp);
		const expected = Buffer.from(webhookSignature(this.secret, timestamp, body));
		const given = Buffer.from(signature);
		if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: "invalid signature" };
		// Only a genuine request takes room in the memory of ids.
		const refusal = this.guard.admit(deliveryId, timestamp * 1000, now);
		return refusal ? { ok: false, reason: refusal } : { ok: true, deliveryId, timestamp };
	}

	forget(deliveryId: string): void {
		this.guard.forget(deliveryId);
	}
}
