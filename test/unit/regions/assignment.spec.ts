import { describe, expect, it } from "vitest";
import { assignRegion } from "../../../regions/assignment.ts";
import { loadRegions } from "../../../regions/loader.ts";

const regions = loadRegions();

describe("assignment on registration", () => {
	it("sends a country to the region whose file lists it", () => {
		expect(assignRegion(regions, "eu-central", "JP")).toEqual({ region: "cn-east", pinned: false });
		expect(assignRegion(regions, "cn-east", "SG")).toEqual({ region: "ap-south", pinned: false });
		expect(assignRegion(regions, "cn-east", "GB")).toEqual({ region: "eu-central", pinned: false });
	});

	it("pins a residency country to its region, always", () => {
		expect(assignRegion(regions, "ap-south", "DE")).toEqual({ region: "eu-central", pinned: true });
	});

	it("keeps a user without a country, or with one no region serves, where the request came in", () => {
		expect(assignRegion(regions, "ap-south")).toEqual({ region: "ap-south", pinned: false });
		expect(assignRegion(regions, "cn-east", "BR")).toEqual({ region: "cn-east", pinned: false });
	});
});
