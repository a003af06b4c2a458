import { describe, expect, it } from "vitest";
import { HomeCache } from "../../../../regions/directory/home-cache.ts";

const regions = ["cn-east", "ap-south", "eu-central"];

describe("HomeCache", () => {
	it("returns what was stored, field for field, including large epochs", () => {
		const cache = new HomeCache(regions);
		cache.set("u1", { region: "eu-central", epoch: 2 ** 40, state: "moving", pinned: true });
		cache.set("u2", { region: "cn-east", epoch: 1, state: "active", pinned: false });
		expect(cache.get("u1")).toEqual({ region: "eu-central", epoch: 2 ** 40, state: "moving", pinned: true });
		expect(cache.get("u2")).toEqual({ region: "cn-east", epoch: 1, state: "active", pinned: false });
	});

	it("evicts the least recently used entry beyond its bound", () => {
		const cache = new HomeCache(regions, 2);
		cache.set("a", { region: "cn-east", epoch: 1, state: "active", pinned: false });
		cache.set("b", { region: "cn-east", epoch: 1, state: "active", pinned: false });
		cache.get("a");
		cache.set("c", { region: "cn-east", epoch: 1, state: "active", pinned: false });
		expect(cache.has("a")).toBe(true);
		expect(cache.has("b")).toBe(false);
		expect(cache.has("c")).toBe(true);
		expect(cache.size).toBe(2);
	});

	it("counts hits and misses", () => {
		const cache = new HomeCache(regions);
		cache.set("a", { region: "ap-south", epoch: 3, state: "active", pinned: false });
		cache.get("a");
		cache.get("b");
		expect([cache.hits, cache.misses, cache.hitRate()]).toEqual([1, 1, 0.5]);
	});

	it("does not cache a region it cannot route to", () => {
		const cache = new HomeCache(regions);
		cache.set("a", { region: "mars-1", epoch: 1, state: "active", pinned: false });
		expect(cache.get("a")).toBeUndefined();
	});
});
