import type { HomeEntry } from "./entries.ts";

/**
 * Bounded LRU of user → home. A Map keeps insertion order, so re-inserting on a hit makes the
 * first key the least recently used. Entries are packed into one number (epoch, region index,
 * state, pinned) so a million of them stay well under 150 MB of heap.
 */
export class HomeCache {
	private readonly map = new Map<string, number>();
	private readonly regions: string[];
	private readonly index: Map<string, number>;
	readonly max: number;
	hits = 0;
	misses = 0;

	constructor(regions: string[], max = 100_000) {
		if (regions.length > 256) throw new Error("at most 256 regions fit the packed cache entry");
		this.regions = regions;
		this.index = new Map(regions.map((r, i) => [r, i]));
		this.max = max;
	}

	get size(): number {
		return this.map.size;
	}

	get(userId: string): HomeEntry | undefined {
		const packed = this.map.get(userId);
		if (packed === undefined) {
			this.misses++;
			return undefined;
		}
		this.hits++;
		this.map.delete(userId);
		this.map.set(userId, packed);
		return this.unpack(packed);
	}

	/** Reads without counting a hit or refreshing recency: for re-checks, not lookups. */
	peek(userId: string): HomeEntry | undefined {
		const packed = this.map.get(userId);
		return packed === undefined ? undefined : this.unpack(packed);
	}

	private unpack(packed: number): HomeEntry {
		return {
			region: this.regions[(packed >>> 2) & 0xff]!,
			epoch: Math.floor(packed / 1024),
			state: packed & 2 ? "moving" : "active",
			pinned: (packed & 1) === 1
		};
	}

	set(userId: string, home: HomeEntry): void {
		const region = this.index.get(home.region);
		// A region this node does not know cannot be routed to; do not cache it.
		if (region === undefined || !Number.isSafeInteger(home.epoch * 1024)) return;
		const packed = home.epoch * 1024 + region * 4 + (home.state === "moving" ? 2 : 0) + (home.pinned ? 1 : 0);
		this.map.delete(userId);
		this.map.set(userId, packed);
		if (this.map.size > this.max) this.map.delete(this.map.keys().next().value!);
	}

	has(userId: string): boolean {
		return this.map.has(userId);
	}

	delete(userId: string): void {
		this.map.delete(userId);
	}

	clear(): void {
		this.map.clear();
	}

	hitRate(): number {
		const total = this.hits + this.misses;
		return total ? this.hits / total : 0;
	}
}
