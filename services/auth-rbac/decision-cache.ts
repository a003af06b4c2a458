/**
 * Bounded LRU of enforce decisions on one node. A Map keeps insertion order, so re-inserting on a
 * hit makes the first key the least recently used. A size of 0 turns the cache off (every lookup
 * a miss), for measuring the enforcer alone.
 */
export class DecisionCache {
	private readonly map = new Map<string, boolean>();
	readonly max: number;
	hits = 0;
	misses = 0;

	constructor(max: number) {
		this.max = max;
	}

	static key(userId: string, resource: string, action: string): string {
		return `${userId}\0${resource}\0${action}`;
	}

	get size(): number {
		return this.map.size;
	}

	get(key: string): boolean | undefined {
		const allowed = this.map.get(key);
		if (allowed === undefined) {
			this.misses++;
			return undefined;
		}
		this.hits++;
		this.map.delete(key);
		this.map.set(key, allowed);
		return allowed;
	}

	set(key: string, allowed: boolean): void {
		if (this.max === 0) return;
		this.map.delete(key);
		this.map.set(key, allowed);
		if (this.map.size > this.max) this.map.delete(this.map.keys().next().value!);
	}

	clear(): void {
		this.map.clear();
	}
}
