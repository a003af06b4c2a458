import type { CheckpointKeys } from "./chain.ts";
import { signCheckpoint, verifyChain } from "./chain.ts";
import type { Checkpoint, LogStore } from "./store.ts";

export interface Retained {
	region: string;
	deleted: number;
	checkpoint: Checkpoint | null;
}

/** Why retention stopped: it would have deleted records that do not verify, and with them the evidence. */
export class RetentionRefusedError extends Error {
	constructor(region: string, seq: number, reason: string) {
		super(`retention of ${region} stopped: the chain breaks at ${seq} (${reason}) before the records it would delete`);
		this.name = "RetentionRefusedError";
	}
}

/**
 * Deletes the region's records that happened before `cutoff`, as a leading part of its chain (a
 * record that happened earlier than one before it in the chain waits for that one). What goes is
 * verified first, then a checkpoint signed with the audit key marks where the chain continues,
 * then the records are deleted a batch at a time; a crash between leaves records the checkpoint
 * already covers, deleted by the next run.
 */
export async function applyRetention(
	store: LogStore,
	region: string,
	cutoff: number,
	keys: CheckpointKeys,
	opts: { batch: number; pageSize: number }
): Promise<Retained> {
	const current = await store.checkpoint(region);
	const upTo = await store.lastBefore(region, cutoff);
	let checkpoint = current ?? null;
	if (upTo > (current?.seq ?? 0)) {
		const checked = await verifyChain(store, region, keys, opts.pageSize, upTo);
		if (checked.broken) throw new RetentionRefusedError(region, checked.broken.seq, checked.broken.reason);
		const last = await store.at(region, upTo);
		if (!last) throw new RetentionRefusedError(region, upTo, "gap");
		checkpoint = signCheckpoint(keys, { region, seq: upTo, hash: last.hash, at: Date.now() });
		await store.saveCheckpoint(checkpoint);
	}
	let deleted = 0;
	if (checkpoint)
		for (let n = await store.deleteUpTo(region, checkpoint.seq, opts.batch); n > 0; n = await store.deleteUpTo(region, checkpoint.seq, opts.batch))
			deleted += n;
	return { region, deleted, checkpoint };
}
