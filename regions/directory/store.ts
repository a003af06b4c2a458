/**
 * The global directory's storage: a small key-value contract that both the NATS JetStream KV
 * bucket (production) and SQLite (embedded) fulfil, proven by one shared contract suite
 * (test/unit/regions/directory/contract.ts). Keys are dotted: `[A-Za-z0-9_=-]` segments joined
 * by "." (what a NATS KV key allows), e.g. `user.01J…` or `identity.email.3f9a…`.
 * Values are JSON objects. Every write gets a revision, increasing across the whole store.
 */

export interface DirectoryEntry<T = unknown> {
	key: string;
	value: T;
	revision: number;
}

export interface DirectoryChange<T = unknown> {
	key: string;
	/** `undefined` when the key was deleted. */
	value: T | undefined;
	revision: number;
}

export interface DirectoryPage<T = unknown> {
	entries: DirectoryEntry<T>[];
	/** Pass as `afterRevision` for the next page; `null` when this page is the last. */
	next: number | null;
}

export interface DirectoryWatch {
	stop(): Promise<void>;
}

/**
 * How fresh a read must be. By default a read is served locally (a mirror in production), which
 * may trail the origin by seconds or stall: fine for routing, never for deciding ownership.
 * `authoritative` reads the origin itself, and fails rather than answer from a copy.
 */
export interface ReadOptions {
	authoritative?: boolean;
}

export interface DirectoryStore {
	/** The current entry, or undefined. */
	get<T>(key: string, opts?: ReadOptions): Promise<DirectoryEntry<T> | undefined>;
	/** Creates the key only if absent (or deleted); `KEY_EXISTS` otherwise. Returns the revision. */
	create<T>(key: string, value: T): Promise<number>;
	/** Replaces the value only if the key is still at `revision`; `REVISION_MISMATCH` otherwise. */
	update<T>(key: string, value: T, revision: number): Promise<number>;
	/** Deletes the key; with `revision`, only if it is still at that revision (`REVISION_MISMATCH`). */
	delete(key: string, revision?: number): Promise<void>;
	/**
	 * Live entries whose key starts with `prefix`, in revision order, at most `limit` (≤ 1000),
	 * those with revision > `afterRevision`.
	 */
	list<T>(prefix: string, opts: { afterRevision?: number; limit: number } & ReadOptions): Promise<DirectoryPage<T>>;
	/**
	 * Calls `onChange` for every change after `fromRevision` (default: only changes from now on),
	 * in revision order, including deletes.
	 */
	watch<T>(onChange: (change: DirectoryChange<T>) => void, opts?: { fromRevision?: number }): Promise<DirectoryWatch>;
	/**
	 * Resolves when a write to the origin could commit now; DIRECTORY_UNAVAILABLE, saying why, when it could not.
	 * Not a read: an origin that lost its quorum may go on answering reads for seconds.
	 */
	checkOrigin(): Promise<void>;
	close(): Promise<void>;
}

export type DirectoryErrorCode = "KEY_EXISTS" | "REVISION_MISMATCH" | "INVALID_KEY" | "DIRECTORY_UNAVAILABLE";

export class DirectoryError extends Error {
	readonly code: DirectoryErrorCode;
	constructor(code: DirectoryErrorCode, message: string, options?: ErrorOptions) {
		super(message, options);
		this.name = "DirectoryError";
		this.code = code;
	}
}

const KEY = /^[A-Za-z0-9_=-]+(\.[A-Za-z0-9_=-]+)*$/;
export const MAX_KEY_LENGTH = 256;
export const MAX_LIST_LIMIT = 1000;

export function assertKey(key: string): void {
	if (typeof key !== "string" || key.length > MAX_KEY_LENGTH || !KEY.test(key))
		throw new DirectoryError("INVALID_KEY", `invalid directory key "${String(key).slice(0, 80)}"`);
}

/** A prefix is a key, a key followed by ".", a key cut inside its last segment, or "". */
const PREFIX = /^([A-Za-z0-9_=-]+\.)*[A-Za-z0-9_=-]*$/;

/** A throwing callback must not undo a committed write nor stop the feed; it surfaces as an uncaught error. */
export function deliver<T>(onChange: (change: DirectoryChange<T>) => void, change: DirectoryChange<T>): void {
	try {
		onChange(change);
	} catch (err) {
		queueMicrotask(() => {
			throw err;
		});
	}
}

export function assertRevision(revision: number): void {
	if (!Number.isSafeInteger(revision) || revision < 1) throw new RangeError(`a directory revision is a positive integer (got ${revision})`);
}

export function assertAfter(name: string, revision: number): void {
	if (!Number.isSafeInteger(revision) || revision < 0) throw new RangeError(`${name} is a non-negative integer (got ${revision})`);
}

export function assertListBounds(afterRevision: number, limit: number): void {
	assertAfter("afterRevision", afterRevision);
	if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT)
		throw new RangeError(`list limit must be an integer from 1 to ${MAX_LIST_LIMIT} (got ${limit})`);
}

/** A prefix is a key, a key followed by ".", a key cut inside its last segment, or "". */
export function assertPrefix(prefix: string): void {
	if (typeof prefix !== "string" || prefix.length > MAX_KEY_LENGTH || !PREFIX.test(prefix))
		throw new DirectoryError("INVALID_KEY", `invalid directory key prefix "${String(prefix).slice(0, 80)}"`);
}
