import { createHmac } from "node:crypto";
import { identityForm } from "../../regions/directory/identity-form.ts";
import { RateLimitedError } from "./errors.ts";
import type { KnownIps } from "./known-ips.ts";
import type { Admission, Attempt, LoginThrottle } from "./login-throttle.ts";
import { IP_BACKOFF, LOGIN_BACKOFF } from "./login-throttle.ts";

/** An admitted login attempt; it ends one of these ways. */
export interface Pass {
	/** The password was right: no failure, and this IP becomes known for this login; `newIp` when it was not before. */
	succeeded(): Promise<{ newIp: boolean }>;
	/** The password was wrong: a failure, as of now. */
	failed(): Promise<void>;
	/** No password was checked (an error of ours): no failure. */
	unchecked(): Promise<void>;
}

function loginThrottled(retryAfterS: number): RateLimitedError {
	return new RateLimitedError("too many failed logins; try again later", retryAfterS);
}

/**
 * Who may try a password, decided at the entry region before anything is looked up, from what
 * the client sent alone: a login string that exists and one that does not are counted, backed off
 * and refused the same way (one answer, one Retry-After), so a 429 tells nothing about accounts.
 * Budgets: the client IP's (IP_BACKOFF) and the login string's (LOGIN_BACKOFF, exponential). When
 * guessers have backed a login off, an IP that login succeeded from before still gets in, on a
 * budget of its own: an attacker elsewhere cannot lock the owner out.
 */
export class LoginGate {
	private readonly throttle: LoginThrottle;
	private readonly known: KnownIps;
	private readonly key: Buffer;

	/** `key`: the secret of the keyed hashes naming logins and IPs in the store. */
	constructor(throttle: LoginThrottle, known: KnownIps, key: Buffer) {
		this.throttle = throttle;
		this.known = known;
		this.key = key;
	}

	async admit(login: string, ip: string | undefined): Promise<Pass> {
		const ipName = ip === undefined ? undefined : this.name("ip", ip);
		const byIp = ipName ? await this.throttle.admit(`ip:${ipName}`, IP_BACKOFF) : undefined;
		if (byIp && !byIp.ok) throw loginThrottled(byIp.retryAfterS);
		// Every spelling the directory takes for one login counts as that login (a phone has no case to fold).
		const loginName = this.name("login", identityForm("email", login));
		let byLogin: Admission = await this.throttle.admit(`login:${loginName}`, LOGIN_BACKOFF);
		if (!byLogin.ok && ipName && (await this.known.has(loginName, ipName))) byLogin = await this.throttle.admit(`known:${loginName}:${ipName}`, LOGIN_BACKOFF);
		if (!byLogin.ok) {
			await byIp?.attempt.succeeded();
			throw loginThrottled(byLogin.retryAfterS);
		}
		const slots: Attempt[] = [byLogin.attempt, ...(byIp ? [byIp.attempt] : [])];
		const release = () => Promise.all(slots.map(s => s.succeeded())).then(() => undefined);
		return {
			succeeded: async () => {
				await release();
				if (!ipName) return { newIp: false };
				const known = await this.known.has(loginName, ipName);
				await this.known.remember(loginName, ipName);
				return { newIp: !known };
			},
			failed: () => Promise.all(slots.map(s => s.failed())).then(() => undefined),
			unchecked: release
		};
	}

	private name(kind: "login" | "ip", value: string): string {
		return createHmac("sha256", this.key).update(kind).update("\0").update(value).digest("base64url");
	}
}
