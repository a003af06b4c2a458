import type { Context, Service, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { USER_PREFIX } from "../regions/directory/entries.ts";
import { envInt } from "../regions/runtime/env.ts";
import { findRegionRuntime } from "../regions/runtime/region-runtime.ts";
import type { UsersChanged } from "../regions/user-changes.ts";
import { USERS_CHANGED } from "../regions/user-changes.ts";
import { UserReads } from "./cache/user-reads.ts";

/** Longest an answer is served from the cache: the staleness bound when an invalidation is lost (a region cut off). */
const TTL_MS = 1000;
const MAX_ENTRIES = 50_000;
/** Most users one users-changed message may name (regions/user-changes.ts sends at most 500). */
const MAX_USERS_PER_MESSAGE = 1000;

export interface CachingService {
	userReads: UserReads;
	/** `action` with `params` for `userId`, answered from this node's cache when fresh. */
	cachedCall<T>(ctx: Context, action: string, params: Record<string, unknown>, userId: string): Promise<T>;
}

type Self = Service & CachingService & { unlistenMoves?: () => void };

const schema: Partial<ServiceSchema<ServiceSettingSchema, Record<string, unknown>, Record<string, unknown>, Self>> = {
	events: {
		[USERS_CHANGED]: {
			global: true,
			params: { $$strict: true, users: { type: "array", items: { type: "string", max: 64 }, max: MAX_USERS_PER_MESSAGE } },
			handler(this: CachingService, ctx: Context<UsersChanged>) {
				for (const userId of ctx.params.users) this.userReads.invalidate(userId);
			}
		}
	} as ServiceSchema["events"],

	methods: {
		cachedCall<T>(this: CachingService, ctx: Context, action: string, params: Record<string, unknown>, userId: string): Promise<T> {
			return this.userReads.read(userId, `${action}\u0000${JSON.stringify(params)}`, () => ctx.call<T, Record<string, unknown>>(action, params));
		}
	},

	created(this: Self) {
		this.userReads = new UserReads({
			ttlMs: envInt(process.env, "EDGEHOME_CACHE_TTL_MS", TTL_MS, 0, 60_000),
			maxEntries: envInt(process.env, "EDGEHOME_CACHE_ENTRIES", MAX_ENTRIES, 1, 10_000_000)
		});
		// A move changes where the user's data lives (and a failed one what it holds): its entries go.
		// A broker outside a region (a test's) or without its directory has no moves to hear of.
		const runtime = findRegionRuntime(this.broker);
		if (runtime?.has("directory"))
			this.unlistenMoves = runtime.directory.listen(USER_PREFIX, change => this.userReads.invalidate(change.key.slice(USER_PREFIX.length)));
	},

	stopped(this: Self) {
		this.unlistenMoves?.();
		this.userReads.clear();
	}
};

/**
 * Home-aware caching of users' reads where they are asked (a gateway), not where they are
 * answered: a hit costs no hop to the home region, nor a call at all. Keys are the user's own.
 * An entry is dropped on any write of its user in any region (the home region's users-changed
 * broadcast) and on a move (the directory's change feed), and lives at most
 * EDGEHOME_CACHE_TTL_MS (default 1 s; 0 turns the cache off) whatever is lost on the way.
 */
export const cacheMixin = schema as Partial<ServiceSchema>;
