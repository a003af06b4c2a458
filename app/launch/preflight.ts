import { connect } from "node:net";
import { redactUrl } from "../../regions/stores/redis.ts";

export interface PreflightOptions {
	attempts: number;
	delayS: number;
	log?: (msg: string) => void;
}

function reach(host: string, port: number, timeoutMs: number): Promise<void> {
	return new Promise((resolve, reject) => {
		const socket = connect({ host, port });
		const timer = setTimeout(() => socket.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
		socket.once("connect", () => {
			clearTimeout(timer);
			socket.end();
			resolve();
		});
		socket.once("error", err => {
			clearTimeout(timer);
			reject(err);
		});
	});
}

const DEFAULT_PORTS: Record<string, number> = { "nats:": 4222, "tls:": 4222, "mysql:": 3306, "redis:": 6379, "rediss:": 6379 };

/**
 * Waits until `url`'s server accepts connections: a bounded number of attempts with a
 * visible countdown, then a one-line error. Keeps a down server from turning into an
 * endless reconnect loop at start-up.
 */
export async function waitForServer(name: string, url: string, opts: PreflightOptions): Promise<void> {
	let parsed: URL;
	try {
		parsed = new URL(url);
	} catch {
		throw new Error(`${name} URL "${redactUrl(url)}" is not a valid URL`);
	}
	const port = Number(parsed.port || DEFAULT_PORTS[parsed.protocol]);
	if (!parsed.hostname || !port) throw new Error(`${name} URL "${redactUrl(url)}" names no host and port`);
	const log = opts.log ?? (m => console.error(m));
	for (let attempt = 1; ; attempt++) {
		try {
			await reach(parsed.hostname, port, 3000);
			return;
		} catch (err) {
			const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
			if (attempt >= opts.attempts) throw new Error(`${name} at ${redactUrl(url)} is not reachable (${reason}) after ${attempt} attempt(s)`);
			for (let s = opts.delayS; s > 0; s--) {
				log(`${name} at ${redactUrl(url)} is not reachable (${reason}); retrying in ${s}s (attempt ${attempt + 1}/${opts.attempts})`);
				await new Promise(r => setTimeout(r, 1000));
			}
		}
	}
}
