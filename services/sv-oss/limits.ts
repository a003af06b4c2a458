import type { Env } from "../../regions/runtime/env.ts";
import { EnvError, envInt, envString } from "../../regions/runtime/env.ts";

/** Every limit of sv-oss, from the environment (EDGEHOME_OSS_*), read once per service start. */
export interface FileLimits {
	/** Largest file, in bytes. */
	maxFileBytes: number;
	/** What one user's files may hold together, in bytes. */
	quotaBytes: number;
	/** Content types accepted, as detected from the bytes. */
	types: readonly string[];
	/** Longest a download link may live, in seconds. */
	maxLinkSeconds: number;
	/** Longest file name kept, in characters (a longer one is cut, its extension kept). */
	maxNameLength: number;
	/** Longest a paced transfer (pacing.ts) may wait for its next part or request before the home drops it, in ms. */
	transferIdleMs: number;
	/** Paced transfers one node holds at once (uploads and downloads each). */
	maxTransfers: number;
}

/** What an upload may be unless the deployment says otherwise: common documents and pictures. */
export const DEFAULT_TYPES = ["application/pdf", "application/zip", "image/gif", "image/jpeg", "image/png", "image/webp", "text/plain"] as const;

const MIME = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$/;

export function fileLimits(env: Env = process.env): FileLimits {
	const types = envString(env, "EDGEHOME_OSS_TYPES", DEFAULT_TYPES.join(","))
		.split(",")
		.map(t => t.trim().toLowerCase())
		.filter(Boolean);
	const bad = types.find(t => !MIME.test(t));
	if (bad !== undefined || types.length === 0) throw new EnvError("EDGEHOME_OSS_TYPES", bad ?? "", "a comma-separated list of media types (type/subtype)");
	return {
		maxFileBytes: envInt(env, "EDGEHOME_OSS_MAX_FILE_BYTES", 25 * 1024 * 1024, 1, 2 ** 40),
		quotaBytes: envInt(env, "EDGEHOME_OSS_QUOTA_BYTES", 1024 * 1024 * 1024, 1, 2 ** 50),
		types,
		maxLinkSeconds: envInt(env, "EDGEHOME_OSS_LINK_MAX_S", 7 * 24 * 3600, 1, 365 * 24 * 3600),
		maxNameLength: envInt(env, "EDGEHOME_OSS_NAME_MAX", 200, 16, 1000),
		transferIdleMs: envInt(env, "EDGEHOME_OSS_TRANSFER_IDLE_MS", 30_000, 100, 600_000),
		maxTransfers: envInt(env, "EDGEHOME_OSS_MAX_TRANSFERS", 256, 1, 100_000)
	};
}
