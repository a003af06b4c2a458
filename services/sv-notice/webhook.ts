import { isProduction } from "../../regions/runtime/bus-credentials.ts";
import type { Env } from "../../regions/runtime/env.ts";
import { EnvError, envInt } from "../../regions/runtime/env.ts";
import { DeliveryFailedError } from "./delivery-failed.ts";
import type { Delivery, NoticeProvider } from "./providers.ts";
import { DELIVERY_HEADER, MIN_WEBHOOK_SECRET_BYTES, SIGNATURE_HEADER, TIMESTAMP_HEADER, webhookSignature } from "./webhook-signature.ts";

export interface WebhookSettings {
	url: URL;
	secret: string;
	timeoutMs: number;
}

/** Webhooks are on when EDGEHOME_NOTICE_WEBHOOK_URL is set; its secret is then required. */
export function webhookSettingsFromEnv(env: Env): WebhookSettings | undefined {
	const raw = env.EDGEHOME_NOTICE_WEBHOOK_URL;
	if (!raw) return undefined;
	// Notices are personal data: in production they travel encrypted.
	const schemes = isProduction(env) ? ["https:"] : ["https:", "http:"];
	let url: URL | undefined;
	try {
		url = new URL(raw);
	} catch {}
	if (!url || !schemes.includes(url.protocol) || url.username || url.password)
		throw new EnvError("EDGEHOME_NOTICE_WEBHOOK_URL", url?.password ? "(hidden)" : raw, `a ${schemes.join(" or ")} URL without credentials`);
	const secret = env.EDGEHOME_NOTICE_WEBHOOK_SECRET ?? "";
	if (Buffer.byteLength(secret) < MIN_WEBHOOK_SECRET_BYTES)
		throw new EnvError(
			"EDGEHOME_NOTICE_WEBHOOK_SECRET",
			"(hidden)",
			`at least ${MIN_WEBHOOK_SECRET_BYTES} bytes (openssl rand -base64 32), required with the webhook URL`
		);
	return { url, secret, timeoutMs: envInt(env, "EDGEHOME_NOTICE_WEBHOOK_TIMEOUT_MS", 10_000, 100, 60_000) };
}

/** What the receiver gets: the rendered notice, and whom it is for. */
function webhookBody(d: Delivery): string {
	return JSON.stringify({ id: d.noticeId, userId: d.userId, category: d.category, title: d.title, text: d.text, html: d.html, createdAt: d.createdAt });
}

/**
 * Notices to a webhook (an SMS or WeChat relay): a JSON POST signed with the shared secret
 * (webhook-signature.ts). A 2xx answer is a delivery; anything else, a redirect or no answer within
 * the timeout is thrown, and the channel tries again with a fresh timestamp and signature.
 */
export class WebhookProvider implements NoticeProvider {
	private readonly settings: WebhookSettings;

	constructor(settings: WebhookSettings) {
		this.settings = settings;
	}

	async deliver(delivery: Delivery): Promise<void> {
		const body = webhookBody(delivery);
		const timestamp = Math.floor(Date.now() / 1000);
		let status: number;
		try {
			const res = await fetch(this.settings.url, {
				method: "POST",
				headers: {
					"content-type": "application/json",
					"user-agent": "edgehome-notice/1",
					[TIMESTAMP_HEADER]: String(timestamp),
					[DELIVERY_HEADER]: delivery.noticeId,
					[SIGNATURE_HEADER]: webhookSignature(this.settings.secret, timestamp, body)
				},
				body,
				// A redirect would send the notice somewhere nobody configured.
				redirect: "manual",
				signal: AbortSignal.timeout(this.settings.timeoutMs)
			});
			status = res.status;
			await res.body?.cancel();
		} catch (err) {
			const e = err as { name?: string; message?: string; cause?: { code?: string } };
			const reason = e.name === "TimeoutError" ? `no answer within ${this.settings.timeoutMs} ms` : (e.cause?.code ?? e.message ?? String(err));
			throw new DeliveryFailedError("webhook", reason);
		}
		if (status < 200 || status > 299) throw new DeliveryFailedError("webhook", `the receiver answered ${status}`, { status });
	}
}
