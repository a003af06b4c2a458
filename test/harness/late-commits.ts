import type { DirectoryStore } from "../../regions/directory/store.ts";
import { DirectoryError } from "../../regions/directory/store.ts";
import { passThrough } from "./pass-through-store.ts";

export type DirectoryWrite = "create" | "update" | "delete";

/** A directory store whose chosen writes lose their answer, as a hub leader that lost its peers makes them. */
export interface LateCommits extends DirectoryStore {
	/** The next `times` writes `op` of a key starting with `prefix` commit, then fail with DIRECTORY_UNAVAILABLE. */
	commitThenTimeout(op: DirectoryWrite, prefix: string, times?: number): void;
	/** The next `times` such writes fail with DIRECTORY_UNAVAILABLE and change nothing. */
	refuse(op: DirectoryWrite, prefix: string, times?: number): void;
	/** Faults injected so far. */
	readonly injected: { committed: number; refused: number };
}

interface Fault {
	op: DirectoryWrite;
	prefix: string;
	left: number;
	commit: boolean;
}

/**
 * Wraps `store`: a write matching a fault is applied (or not) and then answered with the error
 * nats-kv-store.ts gives for a request that timed out, so its caller cannot tell which happened.
 */
export function lateCommits(store: DirectoryStore): LateCommits {
	const faults: Fault[] = [];
	const injected = { committed: 0, refused: 0 };
	const write = async <T>(op: DirectoryWrite, key: string, run: () => Promise<T>): Promise<T> => {
		const fault = faults.find(f => f.op === op && f.left > 0 && key.startsWith(f.prefix));
		if (!fault) return run();
		fault.left--;
		if (fault.commit) {
			await run();
			injected.committed++;
		} else injected.refused++;
		throw new DirectoryError("DIRECTORY_UNAVAILABLE", `directory ${op} took over 2000 ms`);
	};
	return {
		commitThenTimeout(op, prefix, times = 1) {
			faults.push({ op, prefix, left: times, commit: true });
		},
		refuse(op, prefix, times = 1) {
			faults.push({ op, prefix, left: times, commit: false });
		},
		injected,
		...passThrough(store),
		create: (key, value) => write("create", key, () => store.create(key, value)),
		update: (key, value, revision) => write("update", key, () => store.update(key, value, revision)),
		delete: (key, revision) => write("delete", key, () => store.delete(key, revision))
	};
}
