import { Errors } from "moleculer";
import type { ExternalChannel } from "./categories.ts";

/** A provider could not deliver now; the channel tries again, and its dead letter keeps this as the last error. */
export class DeliveryFailedError extends Errors.MoleculerRetryableError {
	constructor(channel: ExternalChannel, reason: string, data: Record<string, unknown> = {}) {
		super(`${channel} delivery failed: ${reason}`, 502, "NOTICE_DELIVERY_FAILED", { channel, ...data });
	}
}
