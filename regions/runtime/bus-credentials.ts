import { readFileSync } from "node:fs";
import type { DetailedPeerCertificate, PeerCertificate } from "node:tls";
import { checkServerIdentity } from "node:tls";
import type { Authenticator } from "nats";
import { connect, usernamePasswordAuthenticator } from "nats";
import type { Env } from "./env.ts";
import { EnvError } from "./env.ts";

/**
 * Production mode is NODE_ENV=production, which the deploy image sets: the bus must then be
 * locked (credentials, TLS, capability keys), and a node missing any of them does not start.
 */
export function isProduction(env: Env): boolean {
	return env.NODE_ENV === "production";
}

/** What every NATS connection of a node (Moleculer's transporter, its links, the directory's client) adds to log in. */
export interface NatsCredentials {
	/** Moleculer's transporter overwrites `user`/`pass` with the URL's, so the login travels as an authenticator. */
	authenticator?: Authenticator;
	/** Present: the connection must be TLS, and the server's certificate must come from this CA. */
	tls?: { ca: string; checkServerIdentity: typeof checkServerIdentity };
}

/**
 * The bus login from EDGEHOME_NATS_USER / EDGEHOME_NATS_PASSWORD and the CA of the servers'
 * certificates from EDGEHOME_NATS_CA (a PEM file). Required in production mode; optional otherwise
 * (the embedded cluster and the test servers run without).
 */
export function natsCredentials(env: Env): NatsCredentials {
	const user = env.EDGEHOME_NATS_USER || undefined;
	const password = env.EDGEHOME_NATS_PASSWORD || undefined;
	const caFile = env.EDGEHOME_NATS_CA || undefined;
	if (user && !password) throw new EnvError("EDGEHOME_NATS_PASSWORD", "", `the NATS password of user ${user}`);
	if (password && !user) throw new EnvError("EDGEHOME_NATS_USER", "", "the NATS user the password belongs to");
	if (isProduction(env)) {
		if (!user) throw new EnvError("EDGEHOME_NATS_USER", "", "a NATS user and EDGEHOME_NATS_PASSWORD in production mode (NODE_ENV=production)");
		if (!caFile)
			throw new EnvError("EDGEHOME_NATS_CA", "", "the PEM file of the CA that signed the NATS servers' certificates, in production mode (NODE_ENV=production)");
	}
	const credentials: NatsCredentials = {};
	if (user && password) credentials.authenticator = usernamePasswordAuthenticator(user, password);
	if (caFile) credentials.tls = { ca: readCa(caFile), checkServerIdentity: noteExpiry };
	return credentials;
}

/** Seconds since the epoch; see natsCertificateExpiry. */
let presentedExpiry: number | undefined;

/**
 * When the first certificate of the chain a NATS server presented to this process (the server's,
 * or its CA's) expires, as of the last TLS handshake; undefined before any. Served as a metric, so
 * an expiring certificate is seen before connections start failing.
 */
export function natsCertificateExpiry(): number | undefined {
	return presentedExpiry;
}

/** Node's own host name check, after noting the chain's first expiry (Node hands it the verified chain, CA included). */
function noteExpiry(host: string, cert: PeerCertificate): Error | undefined {
	let earliest = Number.POSITIVE_INFINITY;
	for (let c: DetailedPeerCertificate | undefined = cert as DetailedPeerCertificate; c; c = c.issuerCertificate === c ? undefined : c.issuerCertificate)
		earliest = Math.min(earliest, Date.parse(c.valid_to) / 1000);
	if (Number.isFinite(earliest)) presentedExpiry = earliest;
	return checkServerIdentity(host, cert);
}

function readCa(file: string): string {
	let pem: string;
	try {
		pem = readFileSync(file, "utf8");
	} catch (err) {
		throw new EnvError("EDGEHOME_NATS_CA", file, `a readable PEM file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
	}
	if (!pem.includes("-----BEGIN CERTIFICATE-----")) throw new EnvError("EDGEHOME_NATS_CA", file, "a PEM file holding a CA certificate");
	return pem;
}

/**
 * Logs in once and leaves: a wrong password or a TLS mismatch ends start-up with one line, where
 * the transporter would retry it forever.
 */
export async function checkNatsLogin(url: string, credentials: NatsCredentials): Promise<void> {
	try {
		const nc = await connect({ servers: url, ...credentials, timeout: 5000, maxReconnectAttempts: 0 });
		await nc.close();
	} catch (err) {
		const hint = credentials.authenticator
			? "check EDGEHOME_NATS_USER, EDGEHOME_NATS_PASSWORD and EDGEHOME_NATS_CA"
			: "set EDGEHOME_NATS_USER, EDGEHOME_NATS_PASSWORD and EDGEHOME_NATS_CA";
		throw new Error(`NATS refused this node's login: ${(err as Error).message}; ${hint}`);
	}
}
