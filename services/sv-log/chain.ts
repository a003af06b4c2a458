import { createHmac, timingSafeEqual } from "node:crypto";
import { canonicalJson, GENESIS, hashOf } from "./record.ts";
import type { Checkpoint, LogStore } from "./store.ts";

/** The keys that sign checkpoints (mixins/audit.mixin.ts's `auditKeys("checkpoint")`): the first signs, any verifies. */
export type CheckpointKeys = readonly { kid: string; key: Buffer }[];

const signed = (c: Omit<Checkpoint, "kid" | "signature">) => canonicalJson({ region: c.region, seq: c.seq, hash: c.hash, at: c.at });

export function signCheckpoint(keys: CheckpointKeys, c: Omit<Checkpoint, "kid" | "signature">): Checkpoint {
	const { kid, key } = keys[0]!;
	return { ...c, kid, signature: createHmac("sha256", key).update(signed(c)).digest("hex") };
}

export function checkpointValid(keys: CheckpointKeys, c: Checkpoint): boolean {
	const key = keys.find(k => k.kid === c.kid)?.key;
	if (!key) return false;
	const expected = createHmac("sha256", key).update(signed(c)).digest();
	const given = Buffer.from(c.signature, "hex");
	return given.length === expected.length && timingSafeEqual(given, expected);
}

/** Where a chain first fails to verify, and why. */
export interface BrokenLink {
	seq: number;
	id: string | null;
	reason: "checkpoint-signature" | "hash-mismatch" | "link-mismatch" | "gap";
}

export interface Verification {
	region: string;
	ok: boolean;
	/** Records checked. */
	checked: number;
	/** Where verification started: the checkpoint's seq, 0 without one. */
	from: number;
	/** The last seq checked. */
	to: number;
	broken: BrokenLink | null;
}

/**
 * Walks the region's chain from its checkpoint (or its start) in order: each record must sit at
 * the next position, link to the hash of the one before, and hash to what it carries. The first
 * record that does not is reported; nothing after it is looked at. `until`: the last seq to check.
 */
export async function verifyChain(
	store: LogStore,
	region: string,
	keys: CheckpointKeys,
	pageSize: number,
	until = Number.MAX_SAFE_INTEGER
): Promise<Verification> {
	const mark = await store.checkpoint(region);
	const from = mark?.seq ?? 0;
	const result = (to: number, checked: number, broken: BrokenLink | null): Verification => ({ region, ok: broken === null, checked, from, to, broken });
	if (mark && !checkpointValid(keys, mark)) return result(from, 0, { seq: mark.seq, id: null, reason: "checkpoint-signature" });
	let prev = mark?.hash ?? GENESIS;
	let seq = from;
	let checked = 0;
	for (;;) {
		const page = await store.scan(region, seq, Math.min(pageSize, until - seq));
		for (const r of page) {
			if (r.seq !== seq + 1) return result(seq, checked, { seq: seq + 1, id: null, reason: "gap" });
			if (r.prevHash !== prev) return result(seq, checked, { seq: r.seq, id: r.id, reason: "link-mismatch" });
			if (hashOf(r) !== r.hash) return result(seq, checked, { seq: r.seq, id: r.id, reason: "hash-mismatch" });
			prev = r.hash;
			seq = r.seq;
			checked++;
		}
		if (page.length < pageSize || seq >= until) return result(seq, checked, null);
	}
}
