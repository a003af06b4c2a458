import { Errors } from "moleculer";
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { assignRegion } from "../../regions/assignment.ts";
import { IDENTITY_KINDS, isUserId, newUserId, USER_PREFIX, userKey } from "../../regions/directory/entries.ts";
import type { HomeEntry } from "../../regions/directory/entries.ts";
import type { Identity } from "../../regions/directory/home-directory.ts";
import { DirectoryError } from "../../regions/directory/store.ts";
import { DirectoryUnavailableError, UserNotFoundError } from "../../regions/errors.ts";
import { Mover } from "../../regions/rehoming.ts";
import { envInt } from "../../regions/runtime/env.ts";
import { regionRuntimeOf } from "../../regions/runtime/region-runtime.ts";
import type { RegionRuntime } from "../../regions/runtime/region-runtime.ts";

export const MAX_IDENTITY_LENGTH = 320;
export const MAX_PAGE_SIZE = 100;
/** Most directory entries one `users` page reads before it answers with what it found. */
const SCAN_BUDGET = 10_000;
/** Most user entries one census reads. */
export const MAX_CENSUS = 10_000_000;

const userId = { type: "string", pattern: /^[0-9a-z]{26}$/, messages: { stringPattern: "userId must be a 26-character user id" } } as const;
const country = { type: "string", pattern: /^[A-Z]{2}$/, optional: true, messages: { stringPattern: "country must be an ISO 3166-1 alpha-2 code" } } as const;
const identity = {
	type: "object",
	strict: true,
	props: { kind: { type: "enum", values: [...IDENTITY_KINDS] }, value: { type: "string", min: 1, max: MAX_IDENTITY_LENGTH } }
} as const;

interface Vars {
	runtime: RegionRuntime;
	mover: Mover;
}

/** Directory failures in the words clients get: a taken identity is a conflict, an unreachable primary a 503. */
function fromDirectory(err: unknown): never {
	if (err instanceof DirectoryError) {
		if (err.code === "KEY_EXISTS") {
			const kind = (err.cause as { kind?: string } | undefined)?.kind ?? "identity";
			throw new Errors.MoleculerClientError(`${kind} is already taken`, 409, "IDENTITY_TAKEN", { kind });
		}
		if (err.code === "DIRECTORY_UNAVAILABLE") throw new DirectoryUnavailableError(err.message);
	}
	throw err;
}

/**
 * The global directory's front: registration (assignment + identity reservation), lookups,
 * region registry. Every region runs it over its own replica of the directory.
 */
const svRegion: ServiceSchema<ServiceSettingSchema, Record<string, never>, Vars> = {
	name: "sv-region",

	actions: {
		register: {
			params: {
				$$strict: true,
				identities: { type: "array", min: 1, max: IDENTITY_KINDS.length, items: identity },
				country
			},
			async handler(ctx: Context<{ identities: Identity[]; country?: string }>) {
				const { identities, country: c } = ctx.params;
				const kinds = identities.map(i => i.kind);
				if (new Set(kinds).size !== kinds.length)
					throw new Errors.ValidationError("each identity kind may appear once", "VALIDATION_ERROR", [{ field: "identities", type: "unique" }]);
				const { region, regions, directory } = this.runtime;
				const assignment = assignRegion(regions, region.id, c);
				const id = newUserId();
				const home: HomeEntry = { region: assignment.region, epoch: 1, state: "active", pinned: assignment.pinned };
				await directory.register(id, identities, home).catch(fromDirectory);
				return { userId: id, ...home };
			}
		},

		unregister: {
			params: { $$strict: true, userId, identities: { type: "array", max: IDENTITY_KINDS.length, items: identity } },
			async handler(ctx: Context<{ userId: string; identities: Identity[] }>) {
				const { directory } = this.runtime;
				const { userId: id, identities } = ctx.params;
				// Release only reservations that really belong to this user.
				await directory.release(id, identities).catch(fromDirectory);
				const user = await directory.entry(id).catch(fromDirectory);
				if (user) await directory.store.delete(userKey(id), user.revision).catch(fromDirectory);
				return { userId: id, removed: Boolean(user) };
			}
		},

		reserve: {
			params: { $$strict: true, userId, identities: { type: "array", min: 1, max: IDENTITY_KINDS.length, items: identity } },
			async handler(ctx: Context<{ userId: string; identities: Identity[] }>) {
				await this.runtime.directory.reserve(ctx.params.userId, ctx.params.identities).catch(fromDirectory);
				return { userId: ctx.params.userId, reserved: ctx.params.identities.length };
			}
		},

		release: {
			params: { $$strict: true, userId, identities: { type: "array", min: 1, max: IDENTITY_KINDS.length, items: identity } },
			async handler(ctx: Context<{ userId: string; identities: Identity[] }>) {
				await this.runtime.directory.release(ctx.params.userId, ctx.params.identities).catch(fromDirectory);
				return { userId: ctx.params.userId };
			}
		},

		lookup: {
			params: { $$strict: true, userId },
			async handler(ctx: Context<{ userId: string }>) {
				const home = await this.runtime.directory.home(ctx.params.userId).catch(fromDirectory);
				if (!home) throw new UserNotFoundError(ctx.params.userId);
				return { userId: ctx.params.userId, ...home };
			}
		},

		resolve: {
			params: { $$strict: true, kind: { type: "enum", values: [...IDENTITY_KINDS] }, value: { type: "string", min: 1, max: MAX_IDENTITY_LENGTH } },
			async handler(ctx: Context<Identity>) {
				const id = await this.runtime.directory.resolve(ctx.params).catch(fromDirectory);
				if (!id || !isUserId(id)) throw new Errors.MoleculerClientError(`no user has this ${ctx.params.kind}`, 404, "USER_NOT_FOUND", { kind: ctx.params.kind });
				return { userId: id };
			}
		},

		assign: {
			params: { $$strict: true, country },
			handler(ctx: Context<{ country?: string }>) {
				return assignRegion(this.runtime.regions, this.runtime.region.id, ctx.params.country);
			}
		},

		regions: {
			params: { $$strict: true },
			handler() {
				const { regions, health } = this.runtime;
				return regions.map(r => ({ id: r.id, name: r.name, status: health.status(r.id), countries: r.countries, residency: r.residency }));
			}
		},

		status: {
			params: { $$strict: true },
			handler() {
				const { region, health } = this.runtime;
				return { region: region.id, regions: health.all() };
			}
		},

		move: {
			params: { $$strict: true, userId, to: { type: "string", pattern: /^[a-z][a-z0-9-]{1,30}[a-z0-9]$/ } },
			// A move copies every participant's rows: allow it far longer than an ordinary call.
			timeout: 120_000,
			async handler(ctx: Context<{ userId: string; to: string }>) {
				const { userId: id, to } = ctx.params;
				if (!this.runtime.regions.some(r => r.id === to))
					throw new Errors.MoleculerClientError(`unknown region "${to}"`, 422, "UNKNOWN_REGION", { region: to });
				const record = await this.mover.move(id, to).catch(fromDirectory);
				return { userId: id, moveId: record.moveId, from: record.from, to: record.to, epoch: record.from === record.to ? record.epoch : record.epoch + 1 };
			}
		},

		moveStatus: {
			params: { $$strict: true, userId },
			async handler(ctx: Context<{ userId: string }>) {
				const record = await this.mover.status(ctx.params.userId).catch(fromDirectory);
				return record ? { state: "moving", ...record } : { userId: ctx.params.userId, state: "none" };
			}
		},

		stats: {
			params: { $$strict: true },
			handler() {
				const { directory, region, routing } = this.runtime;
				const { cache } = directory;
				return {
					region: region.id,
					nodeID: this.broker.nodeID,
					lookups: directory.lookups,
					cache: { size: cache.size, max: cache.max, hits: cache.hits, misses: cache.misses, hitRate: cache.hitRate() },
					routing
				};
			}
		},

		users: {
			params: {
				$$strict: true,
				region: { type: "string", pattern: /^[a-z][a-z0-9-]{1,30}[a-z0-9]$/ },
				after: { type: "number", integer: true, min: 0, default: 0, convert: true },
				limit: { type: "number", integer: true, min: 1, max: MAX_PAGE_SIZE, default: 20, convert: true }
			},
			/**
			 * Users homed in `region`, a page at a time in directory order. The directory is keyed by
			 * user, so a page reads entries until it has `limit` matches or has read SCAN_BUDGET of
			 * them; `next` resumes either way, `null` at the end.
			 */
			async handler(ctx: Context<{ region: string; after: number; limit: number }>) {
				const { region, limit } = ctx.params;
				const items: { userId: string; epoch: number; state: string; pinned: boolean }[] = [];
				let after = ctx.params.after;
				for (let read = 0; items.length < limit && read < SCAN_BUDGET; ) {
					const page = await this.runtime.directory.store.list<HomeEntry>(USER_PREFIX, { afterRevision: after, limit: 1000 }).catch(fromDirectory);
					for (const e of page.entries) {
						read++;
						after = e.revision;
						if (e.value.region === region) items.push({ userId: e.key.slice(USER_PREFIX.length), epoch: e.value.epoch, state: e.value.state, pinned: e.value.pinned });
						if (items.length === limit) break;
					}
					if (page.next === null && items.length < limit) return { items, next: null };
				}
				return { items, next: after };
			}
		},

		census: {
			params: { $$strict: true, limit: { type: "number", integer: true, min: 1, max: MAX_CENSUS, default: MAX_CENSUS, convert: true } },
			// Reads the whole directory in pages: an ops command, allowed to take its time.
			timeout: 120_000,
			async handler(ctx: Context<{ limit: number }>) {
				const users: Record<string, number> = Object.fromEntries(this.runtime.regions.map(r => [r.id, 0]));
				let counted = 0;
				for (let after = 0; counted < ctx.params.limit; ) {
					const page = await this.runtime.directory.store.list<HomeEntry>(USER_PREFIX, { afterRevision: after, limit: 1000 }).catch(fromDirectory);
					for (const e of page.entries) users[e.value.region] = (users[e.value.region] ?? 0) + 1;
					counted += page.entries.length;
					if (page.next === null) return { users, total: counted, complete: true };
					after = page.next;
				}
				return { users, total: counted, complete: false };
			}
		}
	},

	created() {
		this.runtime = regionRuntimeOf(this.broker);
		const { region, regions, directory, links } = this.runtime;
		const counted = this.broker.isMetricsEnabled();
		if (counted) this.broker.metrics.register({ type: "counter", name: "edgehome.moves", labelNames: ["outcome"], description: "User moves by outcome" });
		this.mover = new Mover({
			broker: this.broker,
			region,
			regions,
			directory,
			links,
			// How long a move waits after marking the user moving; tests stretch it to crash a mover mid-move.
			settleMs: envInt(process.env, "EDGEHOME_MOVE_SETTLE_MS", 500, 0, 600_000),
			onOutcome: outcome => {
				if (counted) this.broker.metrics.increment("edgehome.moves", { outcome });
			}
		});
	},

	started() {
		this.mover.startRecovery();
	},

	stopped() {
		this.mover.stopRecovery();
	}
};

export default svRegion;
