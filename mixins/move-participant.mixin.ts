import type { Context, ServiceSchema } from "moleculer";
import { moveId, userId } from "../kernel/fields.ts";
import { isLockConflict } from "../regions/ownership/fence.ts";
import { regionRuntimeOf } from "../regions/runtime/region-runtime.ts";

/**
 * What a service holding per-user data implements so a user can be rehomed: the user's rows out
 * of the old home, into the new one (replacing whatever a retried import left), counted, deleted.
 * sv-region's mover drives these without knowing the service's tables. Imports and deletes are
 * fenced by the region's ownership row: they commit only for the move that row names.
 */
export interface MoveParticipantMethods {
	moveExport(userId: string): Promise<unknown[]>;
	moveImport(userId: string, rows: unknown[]): Promise<void>;
	moveCount(userId: string): Promise<number>;
	moveDelete(userId: string): Promise<number>;
}

/** A user's rows as a service's own mover object keeps them (export, import, count, remove). */
export interface UserRowsMover {
	export(userId: string): Promise<unknown[]>;
	import(userId: string, rows: unknown[]): Promise<void>;
	count(userId: string): Promise<number>;
	remove(userId: string): Promise<number>;
}

/** The four methods, answered by the mover object `moverOf` finds on the service: spread into its `methods`. */
export function movesThrough(moverOf: (service: any) => UserRowsMover): MoveParticipantMethods {
	return {
		moveExport(this: unknown, userId) {
			return moverOf(this).export(userId);
		},
		moveImport(this: unknown, userId, rows) {
			return moverOf(this).import(userId, rows);
		},
		moveCount(this: unknown, userId) {
			return moverOf(this).count(userId);
		},
		moveDelete(this: unknown, userId) {
			return moverOf(this).remove(userId);
		}
	};
}

/** Largest user export accepted in one import call. */
export const MAX_MOVE_ROWS = 100_000;
/** An import that deadlocks with another move's is rolled back whole by the database, so trying again is safe. */
const IMPORT_ATTEMPTS = 4;

/**
 * Adds the `move.*` actions; the service supplies the four methods. A node running it declares it to
 * the movers (regions/move-participants.ts). They read and replace all of a user's rows, so only
 * holders of the `move` capability (sv-region's movers) may call them across the bus.
 */
/**
 * Default bound of one export or import: a user's rows of one service take well under a second, so
 * a call past this was lost (its node killed, its reply dropped by a NATS restart), and the move
 * is better failed and rolled back than held with its user refusing writes.
 */
export const MOVE_COPY_TIMEOUT_MS = 15_000;

export interface MoveParticipantOptions {
	/** Bound of this service's export and import, for one that copies more than rows (sv-oss streams files). */
	copyTimeoutMs?: number;
}

export function moveParticipantMixin(opts: MoveParticipantOptions = {}): Partial<ServiceSchema> {
	// On the actions, so that a mover in any region learns it with them (callers use an action's own timeout).
	const timeout = opts.copyTimeoutMs ?? MOVE_COPY_TIMEOUT_MS;
	return {
		metadata: { moveParticipant: true },
		actions: {
			"move.export": {
				restricted: "move",
				timeout,
				params: { $$strict: true, userId },
				handler(ctx: Context<{ userId: string }>) {
					return this.moveExport(ctx.params.userId);
				}
			},
			"move.import": {
				restricted: "move",
				timeout,
				params: { $$strict: true, userId, moveId, rows: { type: "array", max: MAX_MOVE_ROWS, items: "object" } },
				async handler(ctx: Context<{ userId: string; moveId: string; rows: unknown[] }>) {
					const { userId: user, moveId: move, rows } = ctx.params;
					for (let attempt = 1; ; attempt++) {
						try {
							await regionRuntimeOf(this.broker).fence.runMove(user, move, "incoming", () => this.moveImport(user, rows));
							return { imported: rows.length };
						} catch (err) {
							if (attempt >= IMPORT_ATTEMPTS || !isLockConflict(err)) throw err;
							await new Promise(r => setTimeout(r, 20 * attempt + Math.random() * 30));
						}
					}
				}
			},
			"move.count": {
				restricted: "move",
				params: { $$strict: true, userId },
				handler(ctx: Context<{ userId: string }>) {
					return this.moveCount(ctx.params.userId);
				}
			},
			"move.delete": {
				restricted: "move",
				params: { $$strict: true, userId, moveId },
				handler(ctx: Context<{ userId: string; moveId: string }>) {
					const { userId: user, moveId: move } = ctx.params;
					return regionRuntimeOf(this.broker).fence.runMove(user, move, "gone", () => this.moveDelete(user));
				}
			}
		}
	};
}
