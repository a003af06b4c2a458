/**
 * A bounded LRU with hit and miss counts, for per-node caches of decisions and verifications. A
 * Map keeps insertion order, so re-inserting on a hit makes the first key the least recently
 * used. A size of 0 turns the cache off (every lookup a miss), for measuring what it saves.
 */
export class Lru<V> {
	private readonly map = new Map<string, V>();
	readonly max: number;
	hits = 0;
	misses = 0;

	constructor(max: number) {
		this.max = max;
	}

	get size(): number {
		return this.map.size;
	}

	get(key: string): V | undefined {
		const value = this.map.get(key);
		if (value === undefined) {
			this.misses++;
			return undefined;
		}
		this.hits++;
		this.map.delete(key);
		this.map.set(key, value);
		return value;
	}

	/** Like `get` without refreshing the entry's age: for entries that expire anyway, it saves a re-insert per hit. */
	peek(key: string): V | undefined {
		const value = this.map.get(key);
		if (value === undefined) this.misses++;
		else this.hits++;
		return value;
	}

	set(key: string, value: V): void {
		if (this.max === 0) return;
		this.map.delete(key);
		this.map.set(key, value);
		if (this.map.size > this.max) this.map.delete(this.map.keys().next().value!);
	}

	delete(key: string): void {
		this.map.delete(key);
	}

	clear(): void {
		this.map.clear();
	}
}
