import type { Server } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SECURITY_HEADERS, setSecurityHeaders } from "../../../../mixins/gateway/security-headers.ts";

describe("setSecurityHeaders", () => {
	let server: Server;
	let base: string;

	beforeAll(async () => {
		server = createServer((req, res) => {
			if (req.url === "/late") res.setHeader("Content-Type", "text/plain");
			setSecurityHeaders(res);
			if (req.url === "/override") res.setHeader("cache-control", "max-age=5");
			if (req.url === "/append") res.appendHeader("X-Frame-Options", "SAMEORIGIN");
			if (req.url === "/inherited") {
				res.setHeader("__proto__", "own");
				res.removeHeader("x-frame-options");
				const inherited = ["constructor", "toString", "hasOwnProperty"].filter(name => res.hasHeader(name) || res.getHeader(name) !== undefined);
				return void res.end(JSON.stringify({ inherited, proto: res.getHeader("__proto__"), names: res.getHeaderNames() }));
			}
			res.end(JSON.stringify(res.getHeaderNames()));
		});
		await new Promise<void>(resolve => server.listen(0, "127.0.0.1", resolve));
		base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
	});
	afterAll(() => new Promise<void>(resolve => server.close(() => resolve())));

	const headersOf = async (path: string) => {
		const res = await fetch(`${base}${path}`);
		return { sent: Object.fromEntries(res.headers), names: (await res.json()) as string[] };
	};

	it("sends every security header, and the response knows them as set", async () => {
		for (const path of ["/", "/late"]) {
			const { sent, names } = await headersOf(path);
			for (const [name, value] of SECURITY_HEADERS) expect({ path, name, value: sent[name.toLowerCase()] }).toEqual({ path, name, value });
			expect(names).toEqual(expect.arrayContaining(SECURITY_HEADERS.map(([name]) => name.toLowerCase())));
		}
	});

	it("knows no header it was not given, as Node's own header store, and removes one", async () => {
		const res = await fetch(`${base}/inherited`);
		const seen = (await res.json()) as { inherited: string[]; proto: string; names: string[] };
		expect(seen.inherited).toEqual([]);
		expect(seen.proto).toBe("own");
		expect(seen.names).toContain("__proto__");
		expect(seen.names).not.toContain("x-frame-options");
		expect([res.headers.get("__proto__"), res.headers.has("x-frame-options")]).toEqual(["own", false]);
	});

	it("lets a later setHeader replace one and appendHeader add to one, on that response only", async () => {
		expect((await headersOf("/override")).sent["cache-control"]).toBe("max-age=5");
		expect((await headersOf("/append")).sent["x-frame-options"]).toBe("DENY, SAMEORIGIN");
		const next = await headersOf("/");
		expect([next.sent["cache-control"], next.sent["x-frame-options"]]).toEqual(["no-store", "DENY"]);
	});
});
