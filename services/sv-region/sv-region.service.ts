import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { Errors } from "moleculer";
import { country, moveId, regionId, userId } from "../../kernel/fields.ts";
import { audit } from "../../mixins/audit.mixin.ts";
import { assignRegion } from "../../regions/assignment.ts";
import type { HomeEntry } from "../../regions/directory/entries.ts";
import { IDENTITY_KINDS, isUserId, newUserId, USER_PREFIX, userKey } from "../../regions/directory/entries.ts";
import type { Identity } from "../../regions/directory/home-directory.ts";
import { DirectoryError } from "../../regions/directory/store.ts";
import { DirectoryUnavailableError, UserNotFoundError } from "../../regions/errors.ts";
import type { HandoverStep } from "../../regions/ownership/handover.ts";
import { HANDOVER_STEPS, HandoverRefused, handover } from "../../regions/ownership/handover.ts";
import type { MoveRecord } from "../../regions/rehoming.ts";
import { Mover } from "../../regions/rehoming.ts";
import { envInt } from "../../regions/runtime/env.ts";
import { globalProbeOf } from "../../regions/runtime/global-probe.ts";
import { readiness } from "../../regions/runtime/health.ts";
import { METRIC } from "../../regions/runtime/metric-names.ts";
import type { RegionRuntime } from "../../regions/runtime/region-runtime.ts";
import { regionRuntimeOf } from "../../regions/runtime/region-runtime.ts";
import { EntryChangedError, HandoverRefusedError, IdentityNotFoundError, IdentityTakenError, MoveNotFoundError, UnknownRegionError } from "./errors.ts";

/** The channel sv-notice takes notices from: producers store a notice there, never call sv-notice in their path. */
const NOTICE_CHANNEL = "notice.send";

export const MAX_IDENTITY_LENGTH = 320;
/** Most user entries one census reads. */
export const MAX_CENSUS = 10_000_000;

/** How long a finished move stays answerable by `moveProgress` (default: EDGEHOME_MOVE_RECORD_TTL_MS, else 7 days). */
const MOVE_RECORD_TTL_MS = 7 * 24 * 3600_000;
const MOVE_PRUNE_INTERVAL_MS = 3600_000;

const identity = {
	type: "object",
	strict: true,
	props: { kind: { type: "enum", values: [...IDENTITY_KINDS] }, value: { type: "string", min: 1, max: MAX_IDENTITY_LENGTH } }
} as const;

interface Vars {
	runtime: RegionRuntime;
	mover: Mover;
	moveRecordTtlMs: number;
	pruner: NodeJS.Timeout | undefined;
}

type MoveState = "running" | "moved" | "rolled-back" | "failed";

/**
 * What is remembered of one move in the directory under `moves.<moveId>`, readable in every
 * region and kept after the journal (`move.<userId>`) is gone, until MOVE_RECORD_TTL_MS after it ended.
 */
interface MoveProgress {
	moveId: string;
	userId: string;
	from: string;
	to: string;
	state: MoveState;
	startedAt: number;
	finishedAt?: number;
	error?: string;
}

interface Methods {
	beginMove(userId: string, to: string): Promise<{ progress: MoveProgress; done: Promise<MoveRecord> }>;
	noticeMoved(record: MoveRecord): Promise<void>;
	settleMove(record: MoveRecord, outcome: Pick<MoveProgress, "state" | "error">, onlyIfRunning?: boolean): Promise<void>;
	pruneMoves(endedBefore: number): Promise<number>;
}

const movesKey = (id: string) => `moves.${id}`;
const MOVES_PREFIX = "moves.";

/** Directory failures in the words clients get: a taken identity is a conflict, an unreachable primary a 503. */
function fromDirectory(err: unknown): never {
	if (err instanceof DirectoryError) {
		if (err.code === "KEY_EXISTS") {
			const kind = (err.cause as { kind?: string } | undefined)?.kind ?? "identity";
			throw new IdentityTakenError(kind);
		}
		if (err.code === "DIRECTORY_UNAVAILABLE") throw new DirectoryUnavailableError(err.message);
	}
	throw err;
}

/**
 * The global directory's front: registration (assignment + identity reservation), lookups,
 * region registry. Every region runs it over its own replica of the directory.
 */
const svRegion: ServiceSchema<ServiceSettingSchema, Methods, Vars> = {
	name: "sv-region",

	actions: {
		register: {
			// The directory's writes decide who owns an identity: only sv-user's enrolment and changes call them (deploy/README.md).
			restricted: "directory",
			params: {
				$$strict: true,
				// Chosen by the caller when it must know the id before the outcome (sv-user journals it): a fresh one otherwise.
				userId: { ...userId, optional: true },
				identities: { type: "array", min: 1, max: IDENTITY_KINDS.length, items: identity },
				country
			},
			async handler(ctx: Context<{ userId?: string; identities: Identity[]; country?: string }>) {
				const { identities, country: c } = ctx.params;
				const kinds = identities.map(i => i.kind);
				if (new Set(kinds).size !== kinds.length)
					throw new Errors.ValidationError("each identity kind may appear once", "VALIDATION_ERROR", [{ field: "identities", type: "unique" }]);
				const { region, regions, directory } = this.runtime;
				const assignment = assignRegion(regions, region.id, c);
				const id = ctx.params.userId ?? newUserId();
				const home: HomeEntry = { region: assignment.region, epoch: 1, state: "active", pinned: assignment.pinned };
				await directory.register(id, identities, home).catch(fromDirectory);
				return { userId: id, ...home };
			}
		},

		unregister: {
			restricted: "directory",
			params: {
				$$strict: true,
				userId,
				identities: { type: "array", max: IDENTITY_KINDS.length, items: identity },
				// The user entry's revision the caller decided on: a newer one (a move, say) is left alone and answered REVISION_MISMATCH.
				revision: { type: "number", integer: true, min: 1, optional: true }
			},
			/**
			 * Undoes a registration: deletes the user entry, then releases the identities that point
			 * at this user (others' are left alone). Reads the origin, so a lagging mirror hides
			 * nothing; idempotent (what is already gone is no error), and bounded: one entry and at
			 * most IDENTITY_KINDS.length identities, each a read and a delete within the store's timeout.
			 * The entry goes first so that a failure half-way still leaves the identities to a re-run.
			 */
			async handler(ctx: Context<{ userId: string; identities: Identity[]; revision?: number }>) {
				const { directory } = this.runtime;
				const { userId: id, identities, revision } = ctx.params;
				const user = await directory.entry(id).catch(fromDirectory);
				if (user && revision !== undefined && user.revision !== revision) throw new EntryChangedError(id, user.revision);
				if (user)
					await directory.store
						.delete(userKey(id), user.revision)
						.catch(async err => {
							if (!(err instanceof DirectoryError && err.code === "REVISION_MISMATCH")) throw err;
							const now = await directory.entry(id);
							if (now) throw new EntryChangedError(id, now.revision);
						})
						.catch(fromDirectory);
				await directory.release(id, identities).catch(fromDirectory);
				return { userId: id, removed: Boolean(user) };
			}
		},

		locate: {
			restricted: "directory",
			params: { $$strict: true, userId },
			/** The user entry as the origin holds it, with its revision (null for none): for decisions a lagging mirror must not make. */
			async handler(ctx: Context<{ userId: string }>) {
				const entry = await this.runtime.directory.entry(ctx.params.userId).catch(fromDirectory);
				return entry ? { userId: ctx.params.userId, ...entry.value, revision: entry.revision } : null;
			}
		},

		reserve: {
			restricted: "directory",
			params: { $$strict: true, userId, identities: { type: "array", min: 1, max: IDENTITY_KINDS.length, items: identity } },
			async handler(ctx: Context<{ userId: string; identities: Identity[] }>) {
				await this.runtime.directory.reserve(ctx.params.userId, ctx.params.identities).catch(fromDirectory);
				return { userId: ctx.params.userId, reserved: ctx.params.identities.length };
			}
		},

		release: {
			restricted: "directory",
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
				if (!id || !isUserId(id)) throw new IdentityNotFoundError(ctx.params.kind);
				return { userId: id };
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
			async handler() {
				const { region, health } = this.runtime;
				// What the answering node can do (regions/runtime/health.ts), then how it sees every region.
				const { serving, bus } = await readiness(this.broker);
				const global = globalProbeOf(this.broker)?.state ?? { status: "unknown" };
				return { region: region.id, node: this.broker.nodeID, serving, global, bus, regions: health.all() };
			}
		},

		move: {
			// Moves, and the handover steps below, change who owns a user's data: signed calls only (deploy/README.md).
			restricted: "move",
			params: { $$strict: true, userId, to: regionId },
			// A move copies every participant's rows: allow it far longer than an ordinary call.
			timeout: 120_000,
			// A failed move has rolled back or is left to the recovery sweep; re-running it would race its own journal.
			retryPolicy: { enabled: false },
			async handler(ctx: Context<{ userId: string; to: string }>) {
				const { userId: id } = ctx.params;
				const { done } = await this.beginMove(id, ctx.params.to);
				const record = await done.catch(fromDirectory);
				return { userId: id, moveId: record.moveId, from: record.from, to: record.to, epoch: record.from === record.to ? record.epoch : record.epoch + 1 };
			}
		},

		startMove: {
			restricted: "move",
			params: { $$strict: true, userId, to: regionId },
			retryPolicy: { enabled: false },
			/** Refusals are answered here, as `move` answers them; the move itself runs on after the reply (see moveProgress). */
			async handler(ctx: Context<{ userId: string; to: string }>) {
				const { progress, done } = await this.beginMove(ctx.params.userId, ctx.params.to);
				// beginMove and onOutcome record the outcome; nobody awaits it here.
				done.catch(err => this.logger.warn(`move ${progress.moveId} of ${progress.userId} failed: ${(err as Error).message}`));
				const { moveId: id, userId: user, from, to, state } = progress;
				return { moveId: id, userId: user, from, to, state };
			}
		},

		handover: {
			restricted: "move",
			visibility: "public",
			home: { region: "region" },
			params: {
				$$strict: true,
				region: regionId,
				userId,
				step: { type: "enum", values: [...HANDOVER_STEPS] },
				epoch: { type: "number", integer: true, min: 1 },
				moveId
			},
			/** One step of a move on this region's ownership row of the user (regions/ownership/handover.ts); run by the mover. */
			async handler(ctx: Context<{ region: string; userId: string; step: HandoverStep; epoch: number; moveId: string }>) {
				const { userId: user, step, epoch, moveId: move } = ctx.params;
				const row = await handover(this.runtime.ownership, user, step, epoch, move).catch(err => {
					if (err instanceof HandoverRefused) throw new HandoverRefusedError(err.message, user, step);
					throw err;
				});
				return row ?? null;
			}
		},

		moveProgress: {
			// Open: it needs the move's random id, and tells whose move it is, between which regions, how far it got
			// or why it stopped: the user's home, as `lookup` tells of any user, and nothing of the user's rows.
			params: { $$strict: true, moveId },
			async handler(ctx: Context<{ moveId: string }>) {
				const { directory } = this.runtime;
				const entry = await directory.store.get<MoveProgress>(movesKey(ctx.params.moveId)).catch(fromDirectory);
				if (!entry) throw new MoveNotFoundError(ctx.params.moveId);
				const progress = entry.value;
				if (progress.state !== "running") return progress;
				const journal = await this.mover.status(progress.userId).catch(fromDirectory);
				if (journal?.moveId === progress.moveId) return { ...progress, step: journal.step };
				// The journal is gone but no outcome was recorded yet (or its mover stopped in between): the directory tells how it ended.
				const home = (await directory.entry(progress.userId).catch(fromDirectory))?.value.region;
				return { ...progress, state: home === progress.to ? "moved" : home === progress.from ? "rolled-back" : "failed" };
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

	methods: {
		/** Checks and begins a move (refusals reject here) and records it as running. */
		/** Tells the user the move is done: a notice stored in the durable channel sv-notice takes notices from, once per move. */
		async noticeMoved(record: MoveRecord) {
			const notice = {
				userId: record.userId,
				category: "account",
				template: "move-completed",
				data: { region: record.to },
				idempotencyKey: `move-completed:${record.moveId}`
			};
			await this.broker.sendToChannel(NOTICE_CHANNEL, notice, { key: record.userId }).catch((err: Error) => {
				this.logger.warn(`move ${record.moveId}: the user's notice was not stored: ${err.message}`);
			});
		},

		async beginMove(id: string, to: string) {
			if (!this.runtime.regions.some(r => r.id === to)) throw new UnknownRegionError(to);
			const { record, done } = await this.mover.start(id, to).catch(fromDirectory);
			const noop = record.from === record.to;
			await audit(this.broker, undefined, {
				actor: "system:sv-region",
				action: "region.move-started",
				target: id,
				outcome: "success",
				detail: { moveId: record.moveId, from: record.from, to: record.to }
			});
			const progress: MoveProgress = {
				moveId: record.moveId,
				userId: id,
				from: record.from,
				to: record.to,
				state: noop ? "moved" : "running",
				startedAt: record.startedAt,
				...(noop ? { finishedAt: record.startedAt } : {})
			};
			// Handled at once: the move may fail before the record below is written. A rolled-back move
			// was recorded by onOutcome; one whose journal is left stays running (recovery ends it), with the error.
			done
				.catch(async err => {
					const left = (await this.mover.status(id))?.moveId === record.moveId;
					await this.settleMove(record, { state: left ? "running" : "failed", error: (err as Error).message }, true);
				})
				.catch(err => this.logger.warn(`cannot record the outcome of move ${record.moveId}: ${(err as Error).message}`));
			try {
				await this.runtime.directory.store.create(movesKey(record.moveId), progress);
			} catch (err) {
				// KEY_EXISTS: the outcome was recorded first. Otherwise the move runs on regardless, and its outcome creates the record.
				if (!(err instanceof DirectoryError && err.code === "KEY_EXISTS"))
					this.logger.warn(`move ${record.moveId} of ${id} is unrecorded until it ends: ${(err as Error).message}`);
			}
			return { progress, done };
		},

		/**
		 * Records how a move ended, or an error while it is still running (compare-and-set, re-read on
		 * a conflict). `onlyIfRunning`: for a failure, which must not overwrite an outcome the mover
		 * or the recovery sweep recorded.
		 */
		async settleMove(record: MoveRecord, outcome: Pick<MoveProgress, "state" | "error">, onlyIfRunning = false) {
			const { store } = this.runtime.directory;
			const key = movesKey(record.moveId);
			for (let attempt = 1; ; attempt++) {
				const entry = await store.get<MoveProgress>(key);
				if (onlyIfRunning && entry && entry.value.state !== "running") return;
				const { moveId: id, userId: user, from, to, startedAt } = record;
				const value: MoveProgress = {
					moveId: id,
					userId: user,
					from,
					to,
					state: outcome.state,
					startedAt,
					...(outcome.state === "running" ? {} : { finishedAt: Date.now() }),
					...(outcome.error ? { error: outcome.error.slice(0, 500) } : {})
				};
				try {
					if (entry) await store.update(key, value, entry.revision);
					else await store.create(key, value);
					if (outcome.state !== "running")
						await audit(this.broker, undefined, {
							actor: "system:sv-region",
							action: "region.move-finished",
							target: user,
							outcome: outcome.state === "moved" ? "success" : "failure",
							detail: { moveId: id, from, to, state: outcome.state }
						});
					return;
				} catch (err) {
					const conflict = err instanceof DirectoryError && (err.code === "REVISION_MISMATCH" || err.code === "KEY_EXISTS");
					if (!conflict || attempt >= 5) throw err;
				}
			}
		},

		/**
		 * Deletes move records that ended (or, still running, began) before `endedBefore`. Records
		 * list in the order they were last written, which for ended moves is the order they ended:
		 * the scan stops at the first ended one that is still young.
		 */
		async pruneMoves(endedBefore: number) {
			const { store } = this.runtime.directory;
			let pruned = 0;
			for (let after = 0; ; ) {
				const page = await store.list<MoveProgress>(MOVES_PREFIX, { afterRevision: after, limit: 1000 });
				for (const e of page.entries) {
					if ((e.value.finishedAt ?? e.value.startedAt) < endedBefore) {
						await store.delete(e.key, e.revision).then(
							() => pruned++,
							() => undefined
						);
					} else if (e.value.state !== "running") return pruned;
				}
				if (page.next === null) return pruned;
				after = page.next;
			}
		}
	},

	created() {
		this.runtime = regionRuntimeOf(this.broker);
		this.moveRecordTtlMs = envInt(process.env, "EDGEHOME_MOVE_RECORD_TTL_MS", MOVE_RECORD_TTL_MS, 1000);
		const counted = this.broker.isMetricsEnabled();
		this.mover = new Mover({
			runtime: this.runtime,
			participants: this.runtime.moveParticipants,
			// A pause after the old home is frozen; tests stretch it to crash a mover mid-move.
			settleMs: envInt(process.env, "EDGEHOME_MOVE_SETTLE_MS", 0, 0, 600_000),
			orphanScanMs: envInt(process.env, "EDGEHOME_MOVE_ORPHAN_SCAN_MS", 10 * 60_000, 1000),
			onOutcome: (outcome, record, cause) => {
				if (counted) this.broker.metrics.increment(METRIC.moves, { outcome });
				const state = outcome === "rolled-back" ? "rolled-back" : "moved";
				void this.settleMove(record, { state, error: cause }).catch(err =>
					this.logger.warn(`cannot record the outcome of move ${record.moveId}: ${(err as Error).message}`)
				);
				if (state === "moved" && record.from !== record.to) void this.noticeMoved(record);
			}
		});
	},

	started() {
		this.mover.startRecovery();
		this.pruner = setInterval(() => {
			void this.pruneMoves(Date.now() - this.moveRecordTtlMs).catch(err => this.logger.warn(`pruning move records failed: ${(err as Error).message}`));
		}, MOVE_PRUNE_INTERVAL_MS);
		this.pruner.unref();
	},

	stopped() {
		this.mover.stopRecovery();
		clearInterval(this.pruner);
	}
};

export default svRegion;
