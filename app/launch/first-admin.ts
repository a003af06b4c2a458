import { randomBytes } from "node:crypto";
import type { Env } from "../../regions/runtime/env.ts";
import { EnvError } from "../../regions/runtime/env.ts";

/** Who `npm start` seeds on a fresh data folder; real servers get theirs from `admin create` in the REPL. */
export const FIRST_ADMIN = { username: "admin", region: "cn-east" } as const;
export const ADMIN_ROLE = "admin";
export const ADMIN_PASSWORD_ENV = "ADMIN_PASSWORD";

/** Calls an action in the region the administrator is to live in (a user without a country is homed where it registers). */
export type RegionCall = <T>(action: string, params: Record<string, unknown>) => Promise<T>;

export type AdminOutcome =
	| { created: false; userId: string; username: string }
	| {
			created: true;
			userId: string;
			username: string;
			region: string;
			/** Set only when generated: shown once, stored nowhere in clear. */
			generatedPassword?: string;
	  };

/** ADMIN_PASSWORD when set and not empty. */
export function adminPasswordFromEnv(env: Env): string | undefined {
	return env[ADMIN_PASSWORD_ENV] || undefined;
}

/** 24 random base64url characters (144 bits) that do not contain the username, as sv-user requires. */
export function generatePassword(username: string): string {
	for (;;) {
		const password = randomBytes(18).toString("base64url");
		if (!password.toLowerCase().includes(username.toLowerCase())) return password;
	}
}

/**
 * Registers `username` where `call` lands and grants it the admin role, unless the username is
 * taken: then nothing changes, whoever holds it (granting by name could hand admin to anyone).
 * `password` (from ADMIN_PASSWORD) must pass sv-user's rules, which are checked there and only
 * there; without one, one is generated.
 */
export async function createAdmin(call: RegionCall, username: string, password?: string): Promise<AdminOutcome> {
	const existing = await call<{ userId: string }>("sv-region.resolve", { kind: "username", value: username }).catch((err: { type?: string }) => {
		if (err.type === "USER_NOT_FOUND") return undefined;
		throw err;
	});
	if (existing) return { created: false, userId: existing.userId, username };
	const secret = password ?? generatePassword(username);
	let user: { id: string; region: string };
	try {
		user = await call("sv-user.register", { username, password: secret });
	} catch (err) {
		const e = err as { type?: string; message: string; data?: { field?: string; message?: string }[] };
		const refused = e.type === "VALIDATION_ERROR" && Array.isArray(e.data) ? e.data.filter(d => d.field === "password") : [];
		if (password !== undefined && refused.length)
			throw new EnvError(ADMIN_PASSWORD_ENV, "(hidden)", `a password sv-user accepts: ${refused.map(d => d.message ?? e.message).join("; ")}`);
		throw err;
	}
	try {
		await call("auth-rbac.grant", { userId: user.id, role: ADMIN_ROLE });
	} catch (err) {
		throw new Error(
			`user ${username} (${user.id}) was registered in ${user.region} but not granted "${ADMIN_ROLE}": ${(err as Error).message}; grant it with: call auth-rbac.grant --userId ${user.id} --role ${ADMIN_ROLE}`
		);
	}
	return { created: true, userId: user.id, username, region: user.region, ...(password === undefined ? { generatedPassword: secret } : {}) };
}
