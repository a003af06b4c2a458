import type { DirectoryStore, ReadOptions } from "../../regions/directory/store.ts";
import { DirectoryError } from "../../regions/directory/store.ts";
import { passThrough } from "./pass-through-store.ts";

/** A directory store as a region cut off from the directory's origin sees it. */
export interface UnreachableOrigin extends DirectoryStore {
	/**
	 * From now on every authoritative read, origin check and write fails: `refuse` at once with
	 * DIRECTORY_UNAVAILABLE, as the NATS store answers a lost route; `hang` only once `reach` is called,
	 * as a request that gets no answer at all.
	 */
	cut(how?: "refuse" | "hang"): void;
	/** The origin answers again; hanging calls go on to the real store. */
	reach(): void;
	/** Authoritative reads and origin checks started and not yet settled. */
	readonly pendingOriginReads: number;
}

/**
 * Wraps `store`: reads served locally (the region's mirror) still answer while cut off; what
 * needs the origin fails with the error nats-kv-store.ts gives when the origin does not answer.
 */
export function unreachableOrigin(store: DirectoryStore): UnreachableOrigin {
	let cut: "refuse" | "hang" | undefined;
	let pending = 0;
	const held: (() => void)[] = [];
	const viaOrigin = async <T>(what: string, op: () => Promise<T>): Promise<T> => {
		if (cut === "hang") await new Promise<void>(resolve => held.push(resolve));
		if (cut === "refuse") throw new DirectoryError("DIRECTORY_UNAVAILABLE", `directory ${what} failed: 503 no responders`);
		return op();
	};
	const read = async <T>(what: string, opts: ReadOptions | undefined, op: () => Promise<T>): Promise<T> => {
		if (!opts?.authoritative) return op();
		pending++;
		try {
			return await viaOrigin(what, op);
		} finally {
			pending--;
		}
	};
	return {
		cut(how = "refuse") {
			cut = how;
		},
		reach() {
			cut = undefined;
			for (const resume of held.splice(0)) resume();
		},
		get pendingOriginReads() {
			return pending;
		},
		...passThrough(store),
		get: (key, opts) => read("get", opts, () => store.get(key, opts)),
		list: (prefix, opts) => read("list", opts, () => store.list(prefix, opts)),
		create: (key, value) => viaOrigin("create", () => store.create(key, value)),
		update: (key, value, revision) => viaOrigin("update", () => store.update(key, value, revision)),
		delete: (key, revision) => viaOrigin("delete", () => store.delete(key, revision)),
		checkOrigin: () => read("check origin", { authoritative: true }, () => store.checkOrigin())
	};
}
