import { Lru } from "../../kernel/lru.ts";

interface Entry {
	value: unknown;
	expires: number;
	generation: number;
}

/**
 * Answers of users' reads, each kept under its user. Every user has a generation, bumped by an
 * invalidation: an entry of an older generation is a miss, so dropping a user's entries costs one
 * counter, and an answer fetched while an invalidation came in is never stored (it may predate the
 * write). Concurrent misses of one key share one fetch. Answers are shared: callers must not change them.
 */
export class UserReads {
	private readonly entries: Lru<Entry>;
	private readonly generations: Lru<number>;
	private readonly inFlight = new Map<string, Promise<unknown>>();
	readonly ttlMs: number;
	/** Reads answered from the cache, reads that fetched, invalidations heard: for stats and tests. */
	hits = 0;
	misses = 0;
	invalidations = 0;

	constructor(opts: { maxEntries: number; ttlMs: number }) {
		this.entries = new Lru(opts.ttlMs > 0 ? opts.maxEntries : 0);
		// Twice the entries: a user's generation outlives its entries, so an evicted one rarely matters.
		this.generations = new Lru(opts.maxEntries * 2);
		this.ttlMs = opts.ttlMs;
	}

	get size(): number {
		return this.entries.size;
	}

	/** `fetch`'s answer for `key` of `userId`, from the cache when fresh. */
	read<T>(userId: string, key: string, fetch: () => Promise<T>): Promise<T> {
		if (this.ttlMs <= 0) {
			this.misses++;
			return fetch();
		}
		const full = `${userId}\u0000${key}`;
		const generation = this.generation(userId);
		const entry = this.entries.peek(full);
		if (entry && entry.generation === generation && entry.expires > Date.now()) {
			this.hits++;
			return Promise.resolve(entry.value as T);
		}
		this.misses++;
		const shared = this.inFlight.get(full);
		if (shared) return shared as Promise<T>;
		const fetching = fetch().then(
			value => {
				this.inFlight.delete(full);
				if (this.generation(userId) === generation) this.entries.set(full, { value, expires: Date.now() + this.ttlMs, generation });
				return value;
			},
			err => {
				this.inFlight.delete(full);
				throw err;
			}
		);
		this.inFlight.set(full, fetching);
		return fetching;
	}

	/** Drops every entry of `userId`, and any answer for it still being fetched. */
	invalidate(userId: string): void {
		this.invalidations++;
		this.generations.set(userId, this.generation(userId) + 1);
		for (const key of this.inFlight.keys()) if (key.startsWith(`${userId}\u0000`)) this.inFlight.delete(key);
	}

	clear(): void {
		this.entries.clear();
		this.inFlight.clear();
	}

	private generation(userId: string): number {
		return this.generations.peek(userId) ?? 0;
	}
}
