import type { ServiceBroker } from "moleculer";
import type { Env } from "../../regions/runtime/env.ts";
import { regionRuntimeOf } from "../../regions/runtime/region-runtime.ts";
import type { RegionCall } from "../launch/first-admin.ts";
import { ADMIN_PASSWORD_ENV, adminPasswordFromEnv, createAdmin } from "../launch/first-admin.ts";
import type { ReplContext } from "./context.ts";

export const ADMIN_CREATE_USAGE = "admin create <username> [--region <id>] [--password-from-env]";

export interface AdminCreateOptions {
	/** Home of the new administrator; default: the REPL's region. */
	region?: string;
	/** Take the password from ADMIN_PASSWORD instead of generating one. */
	passwordFromEnv?: boolean;
}

/**
 * `admin create`: how real servers get an administrator (nothing is seeded there). The user is
 * registered in the chosen region and granted `admin`; a generated password is printed this once.
 */
export async function adminCreate(
	{ regions, print }: ReplContext,
	broker: ServiceBroker,
	username: string,
	opts: AdminCreateOptions,
	env: Env = process.env
): Promise<void> {
	const own = String(broker.metadata.region);
	const region = opts.region ?? own;
	if (!regions.some(r => r.id === region)) return print(`unknown region "${region}"; known: ${regions.map(r => r.id).join(", ")}`);
	const password = opts.passwordFromEnv ? adminPasswordFromEnv(env) : undefined;
	if (opts.passwordFromEnv && !password) return print(`--password-from-env: ${ADMIN_PASSWORD_ENV} is not set`);
	// A user without a country is homed in the region that registers it: register there.
	const call: RegionCall = (action, params) => regionRuntimeOf(broker).call(region, action, params);
	const res = await createAdmin(call, username, password);
	if (!res.created) return print(`${username} already exists (${res.userId}); nothing changed`);
	print(`created administrator ${res.username} (${res.userId}) in ${res.region}`);
	print(res.generatedPassword ? `password (shown this once): ${res.generatedPassword}` : `password: from ${ADMIN_PASSWORD_ENV}`);
}
