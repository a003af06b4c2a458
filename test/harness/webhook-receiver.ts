import type { IncomingHttpHeaders } from "node:http";
import { createServer } from "node:http";
import type { WebhookRefusal } from "../../services/sv-notice/webhook-signature.ts";
import { WebhookVerifier } from "../../services/sv-notice/webhook-signature.ts";

/** One request as it came in, to send again as it was. */
export interface ReceivedRequest {
	headers: IncomingHttpHeaders;
	body: string;
	/** What the receiver answered. */
	status: number;
	/** Why the verifier refused it, if it did. */
	refused?: WebhookRefusal;
}

export interface WebhookReceiver {
	readonly url: string;
	readonly requests: ReceivedRequest[];
	/** Deliveries verified and handled (answered 2xx), by delivery id, in order. */
	readonly handled: { deliveryId: string; body: Record<string, unknown> }[];
	/** What the receiver's own handling of a verified delivery answers (200 unless set); a failure lets the sender's retry in. */
	answer: (deliveryId: string, body: Record<string, unknown>) => number;
	stop(): Promise<void>;
}

/**
 * A webhook receiver on loopback as a relay would write one: every request checked by the
 * project's verifier (401 for a bad signature or timestamp, 409 for a delivery id it already took).
 */
export async function startWebhookReceiver(secret: string): Promise<WebhookReceiver> {
	const verifier = new WebhookVerifier(secret);
	const requests: ReceivedRequest[] = [];
	const handled: WebhookReceiver["handled"] = [];
	// Set once the server listens, before any request can come.
	let receiver: WebhookReceiver | undefined;
	const server = createServer((req, res) => {
		const chunks: Buffer[] = [];
		req.on("data", c => chunks.push(c));
		req.on("end", () => {
			const raw = Buffer.concat(chunks);
			const verdict = verifier.verify(req.headers, raw);
			let status: number;
			if (!verdict.ok) status = verdict.reason === "replayed" ? 409 : 401;
			else {
				const body = JSON.parse(raw.toString("utf8")) as Record<string, unknown>;
				status = receiver!.answer(verdict.deliveryId, body);
				if (status >= 200 && status < 300) handled.push({ deliveryId: verdict.deliveryId, body });
				else verifier.forget(verdict.deliveryId);
			}
			requests.push({ headers: req.headers, body: raw.toString("utf8"), status, ...(verdict.ok ? {} : { refused: verdict.reason }) });
			res.writeHead(status, { "content-type": "text/plain" }).end(verdict.ok ? "ok" : verdict.reason);
		});
	});
	await new Promise<void>(resolve => server.listen(0, "127.0.0.1", resolve));
	receiver = {
		url: `http://127.0.0.1:${(server.address() as { port: number }).port}/notices`,
		requests,
		handled,
		answer: () => 200,
		stop: () => new Promise<void>(resolve => server.close(() => resolve()))
	};
	return receiver;
}
