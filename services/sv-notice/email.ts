import { readFileSync } from "node:fs";
import type { Logger } from "moleculer";
import type { Transporter } from "nodemailer";
import nodemailer from "nodemailer";
import type SMTPPool from "nodemailer/lib/smtp-pool/index.js";
import { isProduction } from "../../regions/runtime/bus-credentials.ts";
import type { Env } from "../../regions/runtime/env.ts";
import { EnvError, envChoice, envInt } from "../../regions/runtime/env.ts";
import { DeliveryFailedError } from "./delivery-failed.ts";
import type { Delivery, NoticeProvider, Recipient } from "./providers.ts";

export interface EmailSettings {
	/** `smtp://host[:port]` (STARTTLS when offered, or required) or `smtps://host[:port]` (TLS from the start). */
	url: URL;
	/** The From header: `addr@domain` or `Name <addr@domain>`. */
	from: string;
	/** The domain of Message-IDs: the sender's. */
	domain: string;
	auth?: { user: string; pass: string };
	/** smtp:// only: refuse to send unless the server upgrades to TLS. */
	requireTls: boolean;
	/** PEM of the CA the server's certificate must come from (a private relay); the system's CAs otherwise. */
	ca?: Buffer;
	timeoutMs: number;
}

const FROM = /^(?:[^<>]*<)?[^<>@\s]+@([A-Za-z0-9.-]+\.[A-Za-z]{2,})>?$/;

/** E-mail is on when EDGEHOME_NOTICE_SMTP_URL is set; a wrong setting stops the node (EnvError), naming it. */
export function emailSettingsFromEnv(env: Env): EmailSettings | undefined {
	const raw = env.EDGEHOME_NOTICE_SMTP_URL;
	if (!raw) return undefined;
	let url: URL;
	try {
		url = new URL(raw);
	} catch {
		throw new EnvError("EDGEHOME_NOTICE_SMTP_URL", raw, "smtp://host:port or smtps://host:port");
	}
	if ((url.protocol !== "smtp:" && url.protocol !== "smtps:") || !url.hostname || (url.pathname !== "" && url.pathname !== "/") || url.search)
		throw new EnvError("EDGEHOME_NOTICE_SMTP_URL", raw, "smtp://host:port or smtps://host:port");
	// A URL is logged and shown; the password has its own variable.
	if (url.username || url.password) throw new EnvError("EDGEHOME_NOTICE_SMTP_URL", "(hidden)", "no credentials: set EDGEHOME_NOTICE_SMTP_USER and _PASSWORD");
	const from = env.EDGEHOME_NOTICE_MAIL_FROM ?? "";
	const domain = FROM.exec(from)?.[1];
	if (!domain) throw new EnvError("EDGEHOME_NOTICE_MAIL_FROM", from, "the sender, addr@domain or Name <addr@domain> (required with EDGEHOME_NOTICE_SMTP_URL)");
	const user = env.EDGEHOME_NOTICE_SMTP_USER;
	const pass = env.EDGEHOME_NOTICE_SMTP_PASSWORD;
	if (Boolean(user) !== Boolean(pass))
		throw new EnvError("EDGEHOME_NOTICE_SMTP_USER", user ?? "", "set together with EDGEHOME_NOTICE_SMTP_PASSWORD, or neither");
	const requireTls = envChoice(env, "EDGEHOME_NOTICE_SMTP_REQUIRE_TLS", ["true", "false"], isProduction(env) ? "true" : "false") === "true";
	// A password never crosses the network in the clear.
	if (user && url.protocol === "smtp:" && !requireTls)
		throw new EnvError("EDGEHOME_NOTICE_SMTP_REQUIRE_TLS", "false", "true when EDGEHOME_NOTICE_SMTP_USER is set on smtp:// (or use smtps://)");
	const caFile = env.EDGEHOME_NOTICE_SMTP_CA_FILE;
	return {
		url,
		from,
		domain: domain.toLowerCase(),
		...(user && pass ? { auth: { user, pass } } : {}),
		requireTls,
		...(caFile ? { ca: readFileSync(caFile) } : {}),
		timeoutMs: envInt(env, "EDGEHOME_NOTICE_SMTP_TIMEOUT_MS", 10_000, 1000, 120_000)
	};
}

/**
 * Notices by e-mail over SMTP (nodemailer, pooled connections). The recipient is the user's
 * address as it is when the notice is delivered; a user without one gets nothing (logged, done).
 * The Message-ID is made from the notice's id, so a notice delivered twice (a retry after a lost
 * reply) is recognisably the same message. Any failure is thrown: the channel tries again.
 */
export class EmailProvider implements NoticeProvider {
	private readonly transport: Transporter<SMTPPool.SentMessageInfo, SMTPPool.Options>;
	private readonly settings: EmailSettings;
	private readonly logger: Logger;

	constructor(settings: EmailSettings, logger: Logger) {
		this.settings = settings;
		this.logger = logger;
		const secure = settings.url.protocol === "smtps:";
		this.transport = nodemailer.createTransport({
			pool: true,
			host: settings.url.hostname,
			port: Number(settings.url.port) || (secure ? 465 : 587),
			secure,
			requireTLS: settings.requireTls,
			...(settings.auth ? { auth: settings.auth } : {}),
			tls: { minVersion: "TLSv1.2", ...(settings.ca ? { ca: settings.ca } : {}) },
			connectionTimeout: settings.timeoutMs,
			greetingTimeout: settings.timeoutMs,
			socketTimeout: settings.timeoutMs
		});
	}

	async deliver(delivery: Delivery, resolve: (userId: string) => Promise<Recipient>): Promise<void> {
		const recipient = await resolve(delivery.userId).catch((err: { type?: string }) => {
			if (err.type === "PROFILE_NOT_FOUND") return { email: null };
			throw err;
		});
		if (!recipient.email) {
			this.logger.info(`notice ${delivery.noticeId}: user ${delivery.userId} has no e-mail address; nothing to send`);
			return;
		}
		try {
			await this.transport.sendMail({
				from: this.settings.from,
				to: recipient.email,
				subject: delivery.title,
				text: delivery.text,
				html: delivery.html,
				messageId: `<${delivery.noticeId}@${this.settings.domain}>`,
				date: new Date(delivery.createdAt),
				// RFC 3834: no out-of-office replies to a notice.
				headers: { "Auto-Submitted": "auto-generated" }
			});
		} catch (err) {
			const e = err as { message?: string; code?: string; responseCode?: number };
			throw new DeliveryFailedError("email", e.message ?? String(err), {
				...(e.code ? { smtpCode: e.code } : {}),
				...(e.responseCode ? { responseCode: e.responseCode } : {})
			});
		}
	}

	async close(): Promise<void> {
		this.transport.close();
	}
}
