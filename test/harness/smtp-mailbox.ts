import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressObject, ParsedMail } from "mailparser";
import { simpleParser } from "mailparser";
import { SMTPServer } from "smtp-server";
import { freePort } from "./free-port.ts";
import { makeCertificates } from "./secure-nats.ts";

/** One message as the server received it over SMTP. */
export interface ReceivedMail {
	mail: ParsedMail;
	/** RCPT TO of the session. */
	recipients: string[];
	/** The session had been upgraded to TLS (STARTTLS) when the message came. */
	secure: boolean;
	/** Who logged in, when someone did. */
	user?: string;
}

export interface Mailbox {
	readonly port: number;
	/** Every message received since the mailbox was made, across restarts. */
	readonly received: ReceivedMail[];
	/** Stops listening and drops open connections: the server is down. */
	stop(): Promise<void>;
	/** Listens again on the same port. */
	start(): Promise<void>;
}

export const addressesOf = (a: AddressObject | AddressObject[] | undefined): string[] =>
	(Array.isArray(a) ? a : a ? [a] : []).flatMap(o => o.value.map(v => v.address ?? ""));

/**
 * A real SMTP server (smtp-server) on loopback: STARTTLS with `tls`'s certificate, AUTH (only once
 * upgraded) for `users`, and every message parsed (mailparser) into `received`.
 */
export async function startMailbox(opts: { port: number; tls: { key: Buffer; cert: Buffer }; users: Record<string, string> }): Promise<Mailbox> {
	const received: ReceivedMail[] = [];
	let server: SMTPServer | undefined;
	const make = () =>
		new SMTPServer({
			...opts.tls,
			authMethods: ["PLAIN", "LOGIN"],
			closeTimeout: 100,
			logger: false,
			onAuth(auth, _session, done) {
				if (auth.username && opts.users[auth.username] === auth.password) return done(null, { user: auth.username });
				done(new Error("invalid credentials"));
			},
			onData(stream, session, done) {
				simpleParser(stream).then(
					mail => {
						received.push({
							mail,
							recipients: session.envelope.rcptTo.map(r => r.address),
							secure: session.secure,
							...(session.user ? { user: String(session.user) } : {})
						});
						done();
					},
					err => done(err)
				);
			}
		});
	const mailbox: Mailbox = {
		port: opts.port,
		received,
		async start() {
			server = make();
			const s = server;
			await new Promise<void>((resolve, reject) => {
				s.once("error", reject);
				s.listen(opts.port, "127.0.0.1", () => resolve());
			});
		},
		async stop() {
			const s = server;
			server = undefined;
			if (s) await new Promise<void>(resolve => s.close(() => resolve()));
		}
	};
	await mailbox.start();
	return mailbox;
}

/** The sender domain of the notice e-mails the tests configure. */
export const MAIL_DOMAIN = "edgehome.test";
export const SMTP_USER = "notices";

/**
 * A mailbox with a certificate of a private CA (the deploy scripts' make-certs.sh, naming
 * 127.0.0.1) and one login, and the settings that point sv-notice at it: STARTTLS required, that
 * CA trusted, that login.
 */
export async function startNoticeMailbox(): Promise<{ mailbox: Mailbox; env: Record<string, string>; cleanup(): Promise<void> }> {
	const certs = mkdtempSync(join(tmpdir(), "notice-smtp-"));
	makeCertificates(certs, ["mail"]);
	const password = "a mail relay password";
	const mailbox = await startMailbox({
		port: await freePort(),
		tls: { key: readFileSync(join(certs, "mail", "server.key")), cert: readFileSync(join(certs, "mail", "server.crt")) },
		users: { [SMTP_USER]: password }
	});
	const env = {
		EDGEHOME_NOTICE_SMTP_URL: `smtp://127.0.0.1:${mailbox.port}`,
		EDGEHOME_NOTICE_MAIL_FROM: `Edgehome <notices@${MAIL_DOMAIN}>`,
		EDGEHOME_NOTICE_SMTP_USER: SMTP_USER,
		EDGEHOME_NOTICE_SMTP_PASSWORD: password,
		EDGEHOME_NOTICE_SMTP_REQUIRE_TLS: "true",
		EDGEHOME_NOTICE_SMTP_CA_FILE: join(certs, "mail", "ca.crt"),
		EDGEHOME_NOTICE_SMTP_TIMEOUT_MS: "2000"
	};
	const cleanup = async () => {
		await mailbox.stop();
		rmSync(certs, { recursive: true, force: true });
	};
	return { mailbox, env, cleanup };
}
