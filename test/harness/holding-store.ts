import type { HomeEntry } from "../../regions/directory/entries.ts";
import { userKey } from "../../regions/directory/entries.ts";
import type { DirectoryStore } from "../../regions/directory/store.ts";
import type { MoveRecord } from "../../regions/rehoming.ts";
import { moveKey } from "../../regions/rehoming.ts";
import { passThrough } from "./pass-through-store.ts";

/**
 * Where a mover's directory freezes, so that a kill lands exactly there:
 * - "before-copied": the rows are copied but the journal still says "moving";
 * - "after-copied": the journal says "copied", the home has not flipped;
 * - "after-flip": the home has flipped, the journal still says "copied".
 */
export type MoveHold = "before-copied" | "after-copied" | "after-flip";

/**
 * The directory as a mover sees it, frozen forever at the write `hold` names (`onHeld` says when);
 * every other call passes through unchanged, reads with their options (an authoritative read
 * answered by the region's mirror would move on a home the origin no longer holds).
 */
export function holdingStore(store: DirectoryStore, hold: MoveHold | undefined, onHeld: () => void): DirectoryStore {
	/** The journals this node created, by user key: they tell a flip from any other update of the user. */
	const journals = new Map<string, MoveRecord>();
	const freeze = (): Promise<never> => {
		onHeld();
		return new Promise<never>(() => undefined);
	};
	return {
		...passThrough(store),
		async create(key, value) {
			const revision = await store.create(key, value);
			if (key.startsWith(moveKey(""))) journals.set(userKey((value as MoveRecord).userId), value as MoveRecord);
			return revision;
		},
		async update(key, value, revision) {
			const copied = key.startsWith(moveKey("")) && (value as MoveRecord).step === "copied";
			const journal = journals.get(key);
			const home = value as HomeEntry;
			const flip = journal !== undefined && home.region === journal.to && home.epoch === journal.epoch + 1;
			if (copied && hold === "before-copied") return freeze();
			const next = await store.update(key, value, revision);
			if ((copied && hold === "after-copied") || (flip && hold === "after-flip")) return freeze();
			return next;
		}
	};
}
