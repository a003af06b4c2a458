import type { IncomingMessage } from "node:http";
import { describe, expect, it } from "vitest";
import { clientIp, trustedProxies } from "../../../../mixins/gateway/client-ip.ts";

const req = (peer: string, xff?: string) =>
	({ socket: { remoteAddress: peer }, headers: xff === undefined ? {} : { "x-forwarded-for": xff } }) as unknown as IncomingMessage;

describe("clientIp", () => {
	const proxies = trustedProxies("10.0.0.0/8, 192.168.1.5, ::1")!;

	it("ignores X-Forwarded-For from a peer that is not a trusted proxy", () => {
		expect(clientIp(req("203.0.113.9", "1.2.3.4"), proxies)).toBe("203.0.113.9");
		expect(clientIp(req("::ffff:203.0.113.9", "1.2.3.4"), proxies)).toBe("203.0.113.9");
	});

	it("takes the nearest untrusted hop when the peer is a trusted proxy, whatever the client wrote further left", () => {
		expect(clientIp(req("10.1.2.3", "6.6.6.6, 198.51.100.7"), proxies)).toBe("198.51.100.7");
		expect(clientIp(req("10.1.2.3", "6.6.6.6, 198.51.100.7, 10.9.9.9, 192.168.1.5"), proxies)).toBe("198.51.100.7");
		expect(clientIp(req("::1", "2001:db8::7"), proxies)).toBe("2001:db8::7");
	});

	it("falls back to the peer on a missing or garbled header", () => {
		expect(clientIp(req("10.1.2.3"), proxies)).toBe("10.1.2.3");
		expect(clientIp(req("10.1.2.3", "not-an-ip"), proxies)).toBe("10.1.2.3");
	});

	it("refuses a bad trusted-proxy entry", () => {
		expect(() => trustedProxies("10.0.0.0/33")).toThrow(/prefix/);
		expect(() => trustedProxies("proxy.local")).toThrow(/not an IP/);
		expect(clientIp(req("10.1.2.3", "1.2.3.4"), trustedProxies(""))).toBe("10.1.2.3");
	});
});
