import type { Context, ServiceSchema } from "moleculer";
import { writeBarrierOf } from "../regions/write-barrier.ts";
import { userId } from "../services/shared/fields.ts";

/**
 * What a service holding per-user data implements so a user can be rehomed: the user's rows out
 * of the old home, into the new one (replacing whatever a retried import left), counted, deleted.
 * sv-region's mover drives these without knowing the service's tables.
 */
export interface MoveParticipantMethods {
	moveExport(userId: string): Promise<unknown[]>;
	moveImport(userId: string, rows: unknown[]): Promise<void>;
	moveCount(userId: string): Promise<number>;
	moveDelete(userId: string): Promise<number>;
}

/** Largest user export accepted in one import call. */
export const MAX_MOVE_ROWS = 100_000;
/** Longest a move waits for a node's in-flight writes of the user. */
export const DRAIN_TIMEOUT_MS = 15_000;


/** Adds the `move.*` actions; the service supplies the four methods. Found by sv-region through `metadata.moveParticipant`. */
export function moveParticipantMixin(): Partial<ServiceSchema> {
	return {
		metadata: { moveParticipant: true },
		actions: {
			// Called on every node of the old home before the export: its admitted writes finish first.
			"move.drain": {
				params: { $$strict: true, userId },
				timeout: DRAIN_TIMEOUT_MS + 1000,
				async handler(ctx: Context<{ userId: string }>) {
					await writeBarrierOf(this.broker)?.drain(ctx.params.userId, DRAIN_TIMEOUT_MS);
					return { drained: true };
				}
			},
			"move.export": {
				params: { $$strict: true, userId },
				handler(ctx: Context<{ userId: string }>) {
					return this.moveExport(ctx.params.userId);
				}
			},
			"move.import": {
				params: { $$strict: true, userId, rows: { type: "array", max: MAX_MOVE_ROWS, items: "object" } },
				async handler(ctx: Context<{ userId: string; rows: unknown[] }>) {
					await this.moveImport(ctx.params.userId, ctx.params.rows);
					return { imported: ctx.params.rows.length };
				}
			},
			"move.count": {
				params: { $$strict: true, userId },
				handler(ctx: Context<{ userId: string }>) {
					return this.moveCount(ctx.params.userId);
				}
			},
			"move.delete": {
				params: { $$strict: true, userId },
				handler(ctx: Context<{ userId: string }>) {
					return this.moveDelete(ctx.params.userId);
				}
			}
		}
	};
}
