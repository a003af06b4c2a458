import type { ServiceBroker } from "moleculer";
import type { DirectoryStore } from "./directory/store.ts";
import { DirectoryError } from "./directory/store.ts";
import type { Env } from "./runtime/env.ts";

/**
 * The services a move copies. Declared, never discovered from whoever answers now: every node
 * that runs a move participant adds its name to one directory entry (`participants`), for good,
 * so a move started on any node (one that runs none of them, or while a participant's nodes are
 * all down) copies every one, and fails if one cannot be reached. One entry read by key, not a
 * listing: a listing can come back short under load, and a short list would move a user without
 * its rows. An operator retires a participant by editing the entry. EDGEHOME_MOVE_PARTICIPANTS,
 * when set, is the list instead.
 */
export const PARTICIPANTS_KEY = "participants";
const RETRY_MS = 2000;

interface Declared {
	names: string[];
}

interface Schema {
	name: string;
	metadata?: Record<string, unknown>;
	mixins?: unknown[];
}

/** The move participants among `schemas` (a service that mixes in mixins/move-participant.mixin.ts). */
export function participantsAmong(schemas: Schema[]): string[] {
	const participates = (s: Schema): boolean => Boolean(s.metadata?.moveParticipant) || (s.mixins ?? []).some(m => participates(m as Schema));
	return schemas.filter(participates).map(s => s.name);
}

/**
 * Records `names` in the directory, retrying in the background while the directory cannot be
 * written; resolves once each is recorded (or `stopped()` says to give up).
 */
export async function declareParticipants(store: DirectoryStore, names: string[], logger: ServiceBroker["logger"], stopped: () => boolean): Promise<void> {
	for (;;) {
		try {
			const entry = await store.get<Declared>(PARTICIPANTS_KEY, { authoritative: true });
			const missing = names.filter(n => !entry?.value.names.includes(n));
			if (missing.length === 0) return;
			const value: Declared = { names: [...(entry?.value.names ?? []), ...missing].sort() };
			if (entry) await store.update(PARTICIPANTS_KEY, value, entry.revision);
			else await store.create(PARTICIPANTS_KEY, value);
			return;
		} catch (err) {
			if (stopped()) return;
			// Another node declared at the same time: read again at once.
			if (err instanceof DirectoryError && (err.code === "KEY_EXISTS" || err.code === "REVISION_MISMATCH")) continue;
			logger.warn(`cannot declare move participants ${names.join(", ")} yet: ${(err as Error).message}`);
			await new Promise(r => setTimeout(r, RETRY_MS));
		}
	}
}

/** Every participant a move must copy: the configured list, else every one ever declared (read on the origin). */
export function declaredParticipants(store: DirectoryStore, env: Env): () => Promise<string[]> {
	const listed = env.EDGEHOME_MOVE_PARTICIPANTS;
	if (listed !== undefined) {
		const names = listed
			.split(",")
			.map(n => n.trim())
			.filter(Boolean);
		return async () => names;
	}
	return async () => [...((await store.get<Declared>(PARTICIPANTS_KEY, { authoritative: true }))?.value.names ?? [])];
}
