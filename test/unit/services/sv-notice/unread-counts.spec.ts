import { describe, expect, it } from "vitest";
import { UnreadCounts } from "../../../../services/sv-notice/unread-counts.ts";

describe("UnreadCounts: the counts a relay round's pushes carry", () => {
	it("reads the counts asked for in one turn in one statement, each user once; a user with none has 0", async () => {
		const reads: string[][] = [];
		const counts = new UnreadCounts(async users => {
			reads.push(users);
			return new Map([
				["ann", 3],
				["bob", 1]
			]);
		});
		const asked = await Promise.all([counts.of("ann"), counts.of("bob"), counts.of("ann"), counts.of("cid")]);
		expect(asked).toEqual([3, 1, 3, 0]);
		expect(reads).toEqual([["ann", "bob", "cid"]]);
		expect(await counts.of("bob")).toBe(1);
		expect(reads).toHaveLength(2);
	});

	it("fails every push of the turn when the read fails (the relay sends them again), and reads anew next turn", async () => {
		let fail = true;
		const counts = new UnreadCounts(async () => {
			if (fail) throw new Error("database gone");
			return new Map([["ann", 2]]);
		});
		const asked = await Promise.allSettled([counts.of("ann"), counts.of("bob")]);
		expect(asked.map(a => a.status)).toEqual(["rejected", "rejected"]);
		fail = false;
		expect(await counts.of("ann")).toBe(2);
	});
});
