import type { Transaction } from "kysely";
import { sql } from "kysely";
import { isLockConflict } from "../stores/lock-errors.ts";
import { unscoped } from "../stores/scoped-db.ts";
import type { Ownership, OwnershipChange, OwnershipRecords } from "./records.ts";

/**
 * The steps a move takes on a region's ownership rows, each one transaction in that region's
 * database. `freeze` is the one safety rests on: it takes the row exclusively, so it waits for
 * every fenced write of the user in flight to commit, and once it commits none can.
 * - old home: `freeze` (moving, before any copy) → `release` (gone, after the flip), or `thaw` (active again, rollback);
 * - new home: `receive` (incoming, before the import) → `claim` (active, after the flip), or `abandon` (gone, rollback).
 */
export type HandoverStep = "freeze" | "thaw" | "release" | "receive" | "claim" | "abandon";
export const HANDOVER_STEPS: readonly HandoverStep[] = ["freeze", "thaw", "release", "receive", "claim", "abandon"];

/** Longest a freeze waits for one round of in-flight writes before it tries again. */
const FREEZE_LOCK_WAIT_S = 5;
const ATTEMPTS = 3;

export class HandoverRefused extends Error {}

/**
 * Applies `step` of move `moveId` for the user at `epoch` (the user's epoch before the move for
 * freeze and thaw, the new one for the others). Every step is idempotent, so a retried or
 * resumed move repeats it safely; one that no longer applies changes nothing.
 */
export async function handover(records: OwnershipRecords, userId: string, step: HandoverStep, epoch: number, moveId: string): Promise<Ownership | undefined> {
	for (let attempt = 1; ; attempt++) {
		try {
			// Its own transaction, even when asked from inside a fenced write: it must commit on its own.
			return await unscoped(records.store.db)
				.transaction()
				.execute(async trx => {
					const restore = await shortLockWait(records, trx);
					try {
						const row = await records.read(trx, userId, "update");
						const next = decide(step, row, epoch, moveId);
						if (!next) return row;
						if (!(await records.write(trx, userId, next, row))) throw new HandoverRefused(`ownership row of ${userId} changed under ${step}`);
						return { ...next, version: (row?.version ?? 0) + 1 };
					} finally {
						await restore();
					}
				});
		} catch (err) {
			if (attempt >= ATTEMPTS || !(isLockConflict(err) || (err instanceof HandoverRefused && !(err instanceof StepRefused)))) throw err;
		}
	}
}

/** The step does not apply to the row as it stands: retrying will not change that. */
class StepRefused extends HandoverRefused {}

/** The row after `step`, or undefined when it is already there (or the step no longer applies). */
function decide(step: HandoverStep, row: Ownership | undefined, epoch: number, moveId: string): OwnershipChange | undefined {
	const at = (state: Ownership["state"], id: string | null = moveId) => row?.state === state && row.epoch === epoch && row.moveId === id;
	// A row of a newer epoch: this move works from a stale directory, or has long ended.
	const newer = row !== undefined && row.epoch > epoch;
	switch (step) {
		case "freeze":
			if (newer) throw new StepRefused(`this region owns the user at epoch ${row.epoch}, newer than the move's ${epoch}`);
			return at("moving") ? undefined : { epoch, state: "moving", moveId };
		case "thaw":
			// Only this move's own freeze is undone; a newer move's stays.
			return at("moving") ? { epoch, state: "active", moveId: null } : undefined;
		case "release":
			return newer || at("gone") ? undefined : { epoch, state: "gone", moveId };
		case "receive":
			if (newer || (row?.state === "active" && row.epoch === epoch)) throw new StepRefused(`this region already owns the user at epoch ${row!.epoch}`);
			return at("incoming") ? undefined : { epoch, state: "incoming", moveId };
		case "claim":
			return newer || at("active", null) ? undefined : { epoch, state: "active", moveId: null };
		case "abandon":
			// A row that went active means the move flipped: its rows are the user's now, never leftovers.
			if (row?.state === "active" && row.epoch === epoch) throw new StepRefused("the move flipped: this region owns the user now");
			return at("incoming") ? { epoch, state: "gone", moveId } : undefined;
	}
}

/** MySQL waits 50 s for a lock by default: a freeze blocked by a stuck write should fail and retry sooner. */
async function shortLockWait(records: OwnershipRecords, trx: Transaction<any>): Promise<() => Promise<void>> {
	if (records.store.dialect !== "mysql") return async () => undefined;
	await sql`set session innodb_lock_wait_timeout = ${sql.raw(String(FREEZE_LOCK_WAIT_S))}`.execute(trx);
	return async () => {
		await sql`set session innodb_lock_wait_timeout = default`.execute(trx).catch(() => undefined);
	};
}
