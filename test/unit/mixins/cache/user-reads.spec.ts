import { describe, expect, it } from "vitest";
import { UserReads } from "../../../../mixins/cache/user-reads.ts";

const counting = () => {
	let calls = 0;
	return {
		fetch: (value: unknown) => () => {
			calls++;
			return Promise.resolve(value);
		},
		get calls() {
			return calls;
		}
	};
};

describe("a cache of users' reads", () => {
	it("answers a fresh entry without fetching, and fetches again once it expired", async () => {
		const reads = new UserReads({ maxEntries: 10, ttlMs: 60 });
		const f = counting();
		expect(await reads.read("u1", "k", f.fetch(1))).toBe(1);
		expect(await reads.read("u1", "k", f.fetch(2))).toBe(1);
		expect(f.calls).toBe(1);
		await new Promise(r => setTimeout(r, 80));
		expect(await reads.read("u1", "k", f.fetch(3))).toBe(3);
		expect({ hits: reads.hits, calls: f.calls }).toEqual({ hits: 1, calls: 2 });
	});

	it("keeps each user's entries apart, and an invalidation drops only that user's", async () => {
		const reads = new UserReads({ maxEntries: 10, ttlMs: 10_000 });
		await reads.read("u1", "k", () => Promise.resolve("one"));
		await reads.read("u2", "k", () => Promise.resolve("two"));
		reads.invalidate("u1");
		expect(await reads.read("u1", "k", () => Promise.resolve("one again"))).toBe("one again");
		expect(await reads.read("u2", "k", () => Promise.resolve("not asked"))).toBe("two");
	});

	it("never stores an answer fetched while an invalidation came in: it may predate the write", async () => {
		const reads = new UserReads({ maxEntries: 10, ttlMs: 10_000 });
		let release!: (v: string) => void;
		const slow = reads.read("u1", "k", () => new Promise<string>(r => (release = r)));
		reads.invalidate("u1");
		// A read after the invalidation does not join the fetch that began before it.
		const after = reads.read("u1", "k", () => Promise.resolve("after the write"));
		release("before the write");
		expect(await slow).toBe("before the write");
		expect(await after).toBe("after the write");
		expect(await reads.read("u1", "k", () => Promise.resolve("fetched"))).toBe("after the write");
	});

	it("shares one fetch among concurrent misses of a key, and caches no failure", async () => {
		const reads = new UserReads({ maxEntries: 10, ttlMs: 10_000 });
		const f = counting();
		const answers = await Promise.all(Array.from({ length: 20 }, () => reads.read("u1", "k", f.fetch("v"))));
		expect(new Set(answers)).toEqual(new Set(["v"]));
		expect(f.calls).toBe(1);
		await expect(reads.read("u2", "k", () => Promise.reject(new Error("down")))).rejects.toThrow("down");
		expect(await reads.read("u2", "k", () => Promise.resolve("up"))).toBe("up");
	});

	it("holds at most its bound of entries, and with a time to live of 0 caches nothing", async () => {
		const reads = new UserReads({ maxEntries: 3, ttlMs: 10_000 });
		for (let i = 0; i < 10; i++) await reads.read(`u${i}`, "k", () => Promise.resolve(i));
		expect(reads.size).toBe(3);
		const off = new UserReads({ maxEntries: 3, ttlMs: 0 });
		const f = counting();
		await off.read("u1", "k", f.fetch(1));
		await off.read("u1", "k", f.fetch(1));
		expect({ calls: f.calls, size: off.size }).toEqual({ calls: 2, size: 0 });
	});
});
