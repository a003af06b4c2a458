import { spawnSync } from "node:child_process";
import { randomBytes, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as connectTls, createServer as createTlsServer } from "node:tls";
import { afterAll, describe, expect, it } from "vitest";
import { brokerConfig } from "../../../../app/broker.config.ts";
import { findRegion, loadRegions } from "../../../../regions/loader.ts";
import { natsCertificateExpiry, natsCredentials } from "../../../../regions/runtime/bus-credentials.ts";
import { CapabilityKeys, capabilityKeys } from "../../../../regions/runtime/capability-keys.ts";
import { DEPLOY_NATS } from "../../../harness/secure-nats.ts";

const dir = mkdtempSync(join(tmpdir(), "edgehome-bus-"));
const ca = join(dir, "ca.crt");
writeFileSync(ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const production = { NODE_ENV: "production" };
const login = { EDGEHOME_NATS_USER: "service", EDGEHOME_NATS_PASSWORD: "s3cret-s3cret" };
const region = findRegion(loadRegions(), "cn-east");

describe("production mode (NODE_ENV=production) on NATS", () => {
	it("refuses to configure a node without a NATS login, naming the variable", () => {
		expect(() => natsCredentials({ ...production, EDGEHOME_NATS_CA: ca })).toThrow(/EDGEHOME_NATS_USER.*production mode/);
		expect(() => brokerConfig({ region, group: "t", transport: "nats", env: { ...production, EDGEHOME_NATS_CA: ca } })).toThrow(/EDGEHOME_NATS_USER/);
	});

	it("refuses to configure a node without the CA of the servers' TLS certificates", () => {
		expect(() => natsCredentials({ ...production, ...login })).toThrow(/EDGEHOME_NATS_CA.*production mode/);
		expect(() => natsCredentials({ ...production, ...login, EDGEHOME_NATS_CA: join(dir, "missing.crt") })).toThrow(/EDGEHOME_NATS_CA.*ENOENT/);
	});

	it("takes a login and a CA, and never shows the password in an error", () => {
		const creds = natsCredentials({ ...production, ...login, EDGEHOME_NATS_CA: ca });
		expect(creds.tls?.ca).toContain("BEGIN CERTIFICATE");
		expect(creds.authenticator).toBeTypeOf("function");
		let message = "";
		try {
			natsCredentials({ EDGEHOME_NATS_PASSWORD: "s3cret-s3cret" });
		} catch (err) {
			message = (err as Error).message;
		}
		expect(message).toMatch(/EDGEHOME_NATS_USER/);
		expect(message).not.toContain("s3cret");
	});

	it("puts the login and TLS into the transporter's options", () => {
		const options = brokerConfig({
			region,
			group: "t",
			transport: "nats",
			env: { ...production, ...login, EDGEHOME_NATS_CA: ca, EDGEHOME_METRICS_PORT: "off" }
		});
		expect((options.transporter as unknown as { options: Record<string, unknown> }).options).toMatchObject({
			authenticator: expect.any(Function),
			tls: { ca: expect.stringContaining("BEGIN") }
		});
	});

	it("holds no capability key unless EDGEHOME_CAPABILITY_KEYS gives it one", () => {
		expect(capabilityKeys(production, "nats")?.signer("mint")).toBeUndefined();
		const key = randomBytes(32);
		const keys = capabilityKeys({ ...production, EDGEHOME_CAPABILITY_KEYS: `mint:${key.toString("base64")}` }, "nats");
		expect(keys?.signer("mint")).toEqual(key);
		expect(keys?.signer("grant")).toBeUndefined();
	});
});

describe("the NATS server's certificate chain", () => {
	it("is noted at each TLS handshake, its first expiry (here the CA's), while the host name is still checked", async () => {
		// One make-certs.sh folder: a CA of 3 days, then a server certificate of 30 signed by it.
		const pki = join(dir, "pki");
		for (const [days, region] of [
			["3", "ap-south"],
			["30", "cn-east"]
		] as const) {
			const run = spawnSync("sh", [join(DEPLOY_NATS, "make-certs.sh"), pki, region], { env: { ...process.env, EDGEHOME_CERT_DAYS: days }, encoding: "utf8" });
			expect(run.status, run.stderr).toBe(0);
		}
		const server = createTlsServer({ key: readFileSync(join(pki, "cn-east", "server.key")), cert: readFileSync(join(pki, "cn-east", "server.crt")) }, s =>
			s.end()
		);
		await new Promise<void>(resolve => server.listen(0, "127.0.0.1", resolve));
		const { port } = server.address() as { port: number };
		const handshake = (servername: string) =>
			new Promise<void>((resolve, reject) => {
				const { tls } = natsCredentials({ EDGEHOME_NATS_CA: join(pki, "ca.crt") });
				const socket = connectTls({ host: "127.0.0.1", port, servername, ...tls }, () => {
					socket.end();
					resolve();
				});
				socket.once("error", reject);
			});
		try {
			await expect(handshake("nats.other.example")).rejects.toThrow(/does not match certificate's altnames/);
			await handshake("nats");
		} finally {
			server.close();
		}
		const ca = new X509Certificate(readFileSync(join(pki, "ca.crt")));
		const own = new X509Certificate(readFileSync(join(pki, "cn-east", "server.crt")));
		expect(Date.parse(own.validTo) - Date.parse(ca.validTo)).toBeGreaterThan(20 * 86_400_000);
		expect(natsCertificateExpiry()).toBe(Date.parse(ca.validTo) / 1000);
	});
});

describe("outside production", () => {
	it("needs no NATS login or TLS (tests and development)", () => {
		expect(natsCredentials({})).toEqual({});
	});

	it("checks restricted calls with keys made in the process when embedded, and not at all on NATS without keys", () => {
		const embedded = capabilityKeys({}, "embedded");
		expect(embedded?.signer("mint")).toHaveLength(32);
		expect(capabilityKeys({}, "embedded")?.signer("mint")).toEqual(embedded?.signer("mint"));
		expect(capabilityKeys({}, "nats")).toBeUndefined();
	});
});

describe("EDGEHOME_CAPABILITY_KEYS", () => {
	it("lists keys per capability: the first signs, every one verifies (rotation)", () => {
		const [next, old] = [randomBytes(32), randomBytes(32)];
		const keys = CapabilityKeys.parse(`grant:${next.toString("base64")}, grant:${old.toString("base64")}`);
		expect(keys.signer("grant")).toEqual(next);
		expect(keys.verifiers("grant")).toEqual([next, old]);
	});

	it.each([
		["short key", `mint:${randomBytes(16).toString("base64")}`],
		["no name", randomBytes(32).toString("base64")],
		["bad name", `Mint!:${randomBytes(32).toString("base64")}`]
	])("refuses a %s without showing the key", (_, raw) => {
		expect(() => CapabilityKeys.parse(raw)).toThrow(/EDGEHOME_CAPABILITY_KEYS="\(hidden\)": expected name:base64 entries/);
	});
});
