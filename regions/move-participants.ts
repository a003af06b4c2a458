import type { ServiceBroker } from "moleculer";
import { DirectoryError } from "./directory/store.ts";
import type { DirectoryStore } from "./directory/store.ts";
import type { Env } from "./runtime/env.ts";

/**
 * The services a move copies. Declared, never discovered from whoever answers now: every node
 * that runs a move participant records its name in the directory (`participant.<name>`), once and
 * for good, so a move started on any node (one that runs none of them, or while a participant's
 * nodes are all down) copies every one, and fails if one cannot be reached. An operator retires a
 * participant by deleting its key. EDGEHOME_MOVE_PARTICIPANTS, when set, is the list instead.
 */
export const PARTICIPANT_PREFIX = "participant.";
const RETRY_MS = 2000;

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
	for (const name of names)
		for (;;) {
			try {
				await store.create(`${PARTICIPANT_PREFIX}${name}`, { name, declaredAt: Date.now() });
				break;
			} catch (err) {
				if (err instanceof DirectoryError && err.code === "KEY_EXISTS") break;
				if (stopped()) return;
				logger.warn(`cannot declare move participant ${name} yet: ${(err as Error).message}`);
				await new Promise(r => setTimeout(r, RETRY_MS));
			}
		}
}

/** Every participant a move must copy: the configured list, else every one ever declared (read on the origin). */
export function declaredParticipants(store: DirectoryStore, env: Env): () => Promise<string[]> {
	const listed = env.EDGEHOME_MOVE_PARTICIPANTS;
	if (listed !== undefined) {
		const names = listed.split(",").map(n => n.trim()).filter(Boolean);
		return async () => names;
	}
	return async () => {
		const names: string[] = [];
		for (let after = 0; ; ) {
			const page = await store.list<{ name: string }>(PARTICIPANT_PREFIX, { afterRevision: after, limit: 1000, authoritative: true });
			names.push(...page.entries.map(e => e.key.slice(PARTICIPANT_PREFIX.length)));
			if (page.next === null) return names.sort();
			after = page.next;
		}
	};
}
