import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { emailSettingsFromEnv } from "../../../../services/sv-notice/email.ts";
import { webhookSettingsFromEnv } from "../../../../services/sv-notice/webhook.ts";

const SECRET = "s".repeat(32);

describe("the e-mail provider's settings", () => {
	it("are off without a URL, and read from the environment with it", () => {
		expect(emailSettingsFromEnv({})).toBeUndefined();
		const s = emailSettingsFromEnv({ EDGEHOME_NOTICE_SMTP_URL: "smtp://mail.example:2525", EDGEHOME_NOTICE_MAIL_FROM: "Edgehome <notices@Edgehome.Example>" });
		expect(s).toMatchObject({ from: "Edgehome <notices@Edgehome.Example>", domain: "edgehome.example", requireTls: false, timeoutMs: 10_000 });
		expect(s!.url.host).toBe("mail.example:2525");
		expect(s).not.toHaveProperty("auth");
	});

	it("require TLS in production, and whenever a password would travel over smtp://", () => {
		const base = { EDGEHOME_NOTICE_SMTP_URL: "smtp://mail.example", EDGEHOME_NOTICE_MAIL_FROM: "n@edgehome.example" };
		expect(emailSettingsFromEnv({ ...base, NODE_ENV: "production" })!.requireTls).toBe(true);
		const login = { EDGEHOME_NOTICE_SMTP_USER: "u", EDGEHOME_NOTICE_SMTP_PASSWORD: "p" };
		expect(() => emailSettingsFromEnv({ ...base, ...login, EDGEHOME_NOTICE_SMTP_REQUIRE_TLS: "false" })).toThrow(/EDGEHOME_NOTICE_SMTP_REQUIRE_TLS/);
		expect(emailSettingsFromEnv({ ...base, ...login, EDGEHOME_NOTICE_SMTP_REQUIRE_TLS: "true" })!.auth).toEqual({ user: "u", pass: "p" });
		expect(emailSettingsFromEnv({ ...base, ...login, EDGEHOME_NOTICE_SMTP_URL: "smtps://mail.example" })!.auth).toEqual({ user: "u", pass: "p" });
	});

	it("take a private CA from a file", () => {
		const file = join(mkdtempSync(join(tmpdir(), "notice-ca-")), "ca.pem");
		writeFileSync(file, "-----BEGIN CERTIFICATE-----\n");
		const s = emailSettingsFromEnv({
			EDGEHOME_NOTICE_SMTP_URL: "smtps://mail.example",
			EDGEHOME_NOTICE_MAIL_FROM: "n@edgehome.example",
			EDGEHOME_NOTICE_SMTP_CA_FILE: file
		});
		expect(s!.ca!.toString()).toContain("BEGIN CERTIFICATE");
	});

	it("refuse what cannot work, naming the setting and never showing a password", () => {
		const from = { EDGEHOME_NOTICE_MAIL_FROM: "n@edgehome.example" };
		expect(() => emailSettingsFromEnv({ ...from, EDGEHOME_NOTICE_SMTP_URL: "http://mail.example" })).toThrow(/EDGEHOME_NOTICE_SMTP_URL.*smtp:\/\/host:port/);
		expect(() => emailSettingsFromEnv({ ...from, EDGEHOME_NOTICE_SMTP_URL: "not a url" })).toThrow(/EDGEHOME_NOTICE_SMTP_URL/);
		const withPassword = () => emailSettingsFromEnv({ ...from, EDGEHOME_NOTICE_SMTP_URL: "smtp://u:hunter2@mail.example" });
		expect(withPassword).toThrow(/EDGEHOME_NOTICE_SMTP_USER/);
		expect(withPassword).not.toThrow(/hunter2/);
		expect(() => emailSettingsFromEnv({ EDGEHOME_NOTICE_SMTP_URL: "smtp://mail.example" })).toThrow(/EDGEHOME_NOTICE_MAIL_FROM/);
		expect(() => emailSettingsFromEnv({ EDGEHOME_NOTICE_SMTP_URL: "smtp://mail.example", EDGEHOME_NOTICE_MAIL_FROM: "nobody" })).toThrow(
			/EDGEHOME_NOTICE_MAIL_FROM/
		);
		expect(() => emailSettingsFromEnv({ ...from, EDGEHOME_NOTICE_SMTP_URL: "smtp://mail.example", EDGEHOME_NOTICE_SMTP_USER: "u" })).toThrow(/PASSWORD/);
		expect(() => emailSettingsFromEnv({ ...from, EDGEHOME_NOTICE_SMTP_URL: "smtp://mail.example", EDGEHOME_NOTICE_SMTP_TIMEOUT_MS: "5" })).toThrow(
			/EDGEHOME_NOTICE_SMTP_TIMEOUT_MS/
		);
	});
});

describe("the webhook provider's settings", () => {
	it("are off without a URL, and need a secret of at least 32 bytes with it", () => {
		expect(webhookSettingsFromEnv({ EDGEHOME_NOTICE_WEBHOOK_SECRET: SECRET })).toBeUndefined();
		const url = { EDGEHOME_NOTICE_WEBHOOK_URL: "http://127.0.0.1:9000/hook" };
		expect(webhookSettingsFromEnv({ ...url, EDGEHOME_NOTICE_WEBHOOK_SECRET: SECRET })).toMatchObject({ secret: SECRET, timeoutMs: 10_000 });
		expect(() => webhookSettingsFromEnv(url)).toThrow(/EDGEHOME_NOTICE_WEBHOOK_SECRET.*32 bytes/);
		const short = () => webhookSettingsFromEnv({ ...url, EDGEHOME_NOTICE_WEBHOOK_SECRET: "s".repeat(31) });
		expect(short).toThrow(/EDGEHOME_NOTICE_WEBHOOK_SECRET="\(hidden\)"/);
	});

	it("take only https in production, and no credentials in the URL", () => {
		const secret = { EDGEHOME_NOTICE_WEBHOOK_SECRET: SECRET };
		expect(() => webhookSettingsFromEnv({ ...secret, NODE_ENV: "production", EDGEHOME_NOTICE_WEBHOOK_URL: "http://relay.example/hook" })).toThrow(/https:/);
		expect(webhookSettingsFromEnv({ ...secret, NODE_ENV: "production", EDGEHOME_NOTICE_WEBHOOK_URL: "https://relay.example/hook" })!.url.href).toBe(
			"https://relay.example/hook"
		);
		const withPassword = () => webhookSettingsFromEnv({ ...secret, EDGEHOME_NOTICE_WEBHOOK_URL: "https://u:hunter2@relay.example/" });
		expect(withPassword).toThrow(/EDGEHOME_NOTICE_WEBHOOK_URL/);
		expect(withPassword).not.toThrow(/hunter2/);
		expect(() => webhookSettingsFromEnv({ ...secret, EDGEHOME_NOTICE_WEBHOOK_URL: "ftp://relay.example/" })).toThrow(/EDGEHOME_NOTICE_WEBHOOK_URL/);
	});
});
