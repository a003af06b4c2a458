import { describe, expect, it } from "vitest";
import { DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookVerifier, webhookSignature } from "../../../../services/sv-notice/webhook-signature.ts";

const SECRET = "a-test-secret-of-at-least-32-bytes!!";
const NOW = 1_800_000_000_000;

function signed(body: string, id = "d1", at = NOW, secret = SECRET) {
	const ts = Math.floor(at / 1000);
	return { [TIMESTAMP_HEADER]: String(ts), [DELIVERY_HEADER]: id, [SIGNATURE_HEADER]: webhookSignature(secret, ts, body) };
}

describe("the notice webhook's verifier", () => {
	it("admits a request signed with the secret over timestamp and body", () => {
		const body = JSON.stringify({ id: "d1", title: "hello" });
		expect(new WebhookVerifier(SECRET).verify(signed(body), Buffer.from(body), NOW)).toEqual({ ok: true, deliveryId: "d1", timestamp: NOW / 1000 });
	});

	it("refuses a changed body, another secret, a changed timestamp and missing headers", () => {
		const v = new WebhookVerifier(SECRET);
		const body = '{"id":"d2"}';
		expect(v.verify(signed(body, "d2"), '{"id":"d3"}', NOW)).toEqual({ ok: false, reason: "invalid signature" });
		expect(v.verify(signed(body, "d2", NOW, `${SECRET}x`), body, NOW)).toEqual({ ok: false, reason: "invalid signature" });
		expect(v.verify({ ...signed(body, "d2"), [TIMESTAMP_HEADER]: String(NOW / 1000 + 1) }, body, NOW)).toEqual({ ok: false, reason: "invalid signature" });
		expect(v.verify({ [DELIVERY_HEADER]: "d2" }, body, NOW)).toEqual({ ok: false, reason: "unsigned" });
		// None of these used up the id.
		expect(v.verify(signed(body, "d2"), body, NOW).ok).toBe(true);
	});

	it("refuses a timestamp more than five minutes from its clock, either way", () => {
		const v = new WebhookVerifier(SECRET);
		expect(v.verify(signed("{}", "old", NOW - 301_000), "{}", NOW)).toEqual({ ok: false, reason: "expired" });
		expect(v.verify(signed("{}", "ahead", NOW + 301_000), "{}", NOW)).toEqual({ ok: false, reason: "expired" });
		expect(v.verify(signed("{}", "late", NOW - 299_000), "{}", NOW).ok).toBe(true);
	});

	it("refuses a delivery id it admitted before (a replay), until the receiver forgets it after failing to handle it", () => {
		const v = new WebhookVerifier(SECRET);
		const headers = signed("{}", "d4");
		expect(v.verify(headers, "{}", NOW).ok).toBe(true);
		expect(v.verify(headers, "{}", NOW + 1000)).toEqual({ ok: false, reason: "replayed" });
		// The sender's retry: same id, fresh timestamp and signature.
		expect(v.verify(signed("{}", "d4", NOW + 5000), "{}", NOW + 5000)).toEqual({ ok: false, reason: "replayed" });
		v.forget("d4");
		expect(v.verify(signed("{}", "d4", NOW + 6000), "{}", NOW + 6000).ok).toBe(true);
	});
});
