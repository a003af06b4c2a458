import type { DirectoryChange, DirectoryEntry, DirectoryStore, DirectoryWatch } from "../../regions/directory/store.ts";
import { passThrough } from "./pass-through-store.ts";

/** A directory store as a region whose mirror stopped following the origin sees it. */
export interface StalledDirectory extends DirectoryStore {
	/** From now on local reads answer what the store held at this moment, and the change feed goes quiet. */
	stall(): Promise<void>;
	/** Follows the origin again (the feed does not replay what it missed). */
	resume(): void;
}

/**
 * Wraps `store` so that, once stalled, every non-authoritative read and the change feed behave
 * like the mirror nats-server 2.9 can leave behind after a restart: frozen at one revision.
 * Authoritative reads and every write still reach the real store, as they reach the origin.
 */
export function stalledDirectory(store: DirectoryStore): StalledDirectory {
	let snapshot: Map<string, DirectoryEntry<unknown>> | undefined;
	return {
		...passThrough(store),
		async stall() {
			const frozen = new Map<string, DirectoryEntry<unknown>>();
			for (let after = 0; ; ) {
				const page = await store.list<unknown>("", { afterRevision: after, limit: 1000 });
				for (const e of page.entries) frozen.set(e.key, e);
				if (page.next === null) break;
				after = page.next;
			}
			snapshot = frozen;
		},
		resume() {
			snapshot = undefined;
		},
		async get<T>(key: string, opts?: { authoritative?: boolean }) {
			if (!snapshot || opts?.authoritative) return store.get<T>(key, opts);
			return snapshot.get(key) as DirectoryEntry<T> | undefined;
		},
		async list<T>(prefix: string, opts: { afterRevision?: number; limit: number; authoritative?: boolean }) {
			if (!snapshot || opts.authoritative) return store.list<T>(prefix, opts);
			const entries = [...snapshot.values()]
				.filter(e => e.key.startsWith(prefix) && e.revision > (opts.afterRevision ?? 0))
				.sort((a, b) => a.revision - b.revision);
			const page = entries.slice(0, opts.limit) as DirectoryEntry<T>[];
			return { entries: page, next: entries.length > opts.limit ? page[page.length - 1]!.revision : null };
		},
		watch<T>(onChange: (change: DirectoryChange<T>) => void, opts?: { fromRevision?: number }): Promise<DirectoryWatch> {
			return store.watch<T>(change => {
				if (!snapshot) onChange(change);
			}, opts);
		}
	};
}
