import { describe, expect, it } from "vitest";
import type { CheckInput, Op } from "./checker.ts";
import { check } from "./checker.ts";

/** The checker on hand-made histories: it must see each anomaly the chaos runs look for, and nothing on a clean one. */
const U = "u1";
const A = "cn-east";
const B = "eu-central";
const regions = [A, "ap-south", B];
const append = (id: string, outcome: Op["outcome"], code?: string): Op => ({
	kind: "append",
	id,
	userId: U,
	entry: "x",
	invokeMs: 0,
	completeMs: 1,
	outcome,
	code
});

/** u1 homed in A from t=100 µs, moving at 1000, flipped to B at 2000. */
function base(): CheckInput {
	return {
		users: [U],
		regions,
		history: [append("o1", "ok"), append("o2", "ok")],
		finalHomes: { [U]: { region: B, epoch: 2, state: "active" } },
		stuck: [],
		rows: {
			[A]: [],
			"ap-south": [],
			[B]: [
				{ opId: "o1", userId: U },
				{ opId: "o2", userId: U }
			]
		},
		audit: { [A]: [{ opId: "o1", userId: U, region: A, atUs: 500 }], "ap-south": [], [B]: [{ opId: "o2", userId: U, region: B, atUs: 2500 }] },
		timeline: {
			[U]: [
				{ atUs: 100, region: A, epoch: 1, state: "active" },
				{ atUs: 1000, region: A, epoch: 1, state: "moving" },
				{ atUs: 2000, region: B, epoch: 2, state: "active" }
			]
		}
	};
}

describe("chaos checker", () => {
	it("finds nothing wrong in a clean history", () => {
		const { counts } = check(base());
		expect(counts).toMatchObject({
			lost: 0,
			duplicated: 0,
			doubleHomed: 0,
			illegalWrites: 0,
			stuck: 0,
			undocumented: 0,
			phantom: 0,
			recordMismatch: 0,
			appendsOk: 2
		});
	});

	it("counts an acknowledged append missing from the final home as lost, even if it sits elsewhere", () => {
		const input = base();
		input.rows[B] = [{ opId: "o2", userId: U }];
		input.rows[A] = [{ opId: "o1", userId: U }];
		expect(check(input).counts).toMatchObject({ lost: 1, doubleHomed: 1, rowsOutsideHome: 1 });
	});

	it("lets an unknown or failed append be absent, never twice", () => {
		const input = base();
		input.history.push(append("o3", "unknown", "OUTCOME_UNKNOWN"), append("o4", "fail", "USER_MOVING"));
		expect(check(input).counts).toMatchObject({ lost: 0, duplicated: 0, undocumented: 0 });
		input.rows[B]!.push({ opId: "o3", userId: U }, { opId: "o3", userId: U });
		expect(check(input).counts).toMatchObject({ duplicated: 1, unknownPresent: 1 });
	});

	it("flags a write by the old home after the flip, and one in a region before it was the home", () => {
		const input = base();
		input.audit[A]!.push({ opId: "late", userId: U, region: A, atUs: 2001 });
		input.audit[B]!.push({ opId: "early", userId: U, region: B, atUs: 1999 });
		expect(check(input).counts).toMatchObject({ illegalWrites: 2, oldHomeAfterFlip: 1, notYetHome: 1 });
	});

	it("does not judge a write inside a gap of the record when the user has a change recorded there: the lost change may have made the region home", () => {
		const input = base();
		// The flip to B (2000) was superseded by a later change (2600, the next move's mark) before the recorder read it.
		input.timeline[U] = [
			{ atUs: 100, region: A, epoch: 1, state: "active" },
			{ atUs: 1000, region: A, epoch: 1, state: "moving" },
			{ atUs: 2600, region: B, epoch: 2, state: "moving" }
		];
		input.recordGaps = [{ fromUs: 1000, toUs: 3000 }];
		// B's write at 2500 looks like one before B was home; in the gap it is not judged.
		expect(check(input).counts).toMatchObject({ illegalWrites: 0, notYetHome: 0, unverifiable: 1 });
		// Outside the gap, or for a user with no change in it, writes are judged as ever.
		input.audit[A]!.push({ opId: "late", userId: U, region: A, atUs: 3500 });
		input.recordGaps = [{ fromUs: 1000, toUs: 2550 }];
		expect(check(input).counts).toMatchObject({ illegalWrites: 2, oldHomeAfterFlip: 1, notYetHome: 1, unverifiable: 0 });
	});

	it("allows the old home's writes while the user is moving, before the flip", () => {
		const input = base();
		input.audit[A]!.push({ opId: "o5", userId: U, region: A, atUs: 1500 });
		expect(check(input).counts.illegalWrites).toBe(0);
	});

	it("counts stuck users, undocumented codes by kind, phantom rows and a record that disagrees with the origin", () => {
		const input = base();
		input.stuck = [U];
		input.history.push(append("o6", "unknown", "REQUEST_TIMEOUT"), append("o7", "fail", "USER_NOT_FOUND"), append("o8", "unknown", "(entry node killed)"));
		input.history.push({ kind: "move", id: "m1", userId: U, to: B, entry: "x", invokeMs: 0, outcome: "fail", code: "WRONG_REGION" });
		input.history.push({ kind: "move", id: "m2", userId: U, to: B, entry: "x", invokeMs: 0, outcome: "fail", code: "MOVE_FAILED" });
		input.rows[B]!.push({ opId: "never-issued", userId: U });
		input.finalHomes[U] = { region: B, epoch: 3, state: "active" };
		const { counts } = check(input);
		expect(counts).toMatchObject({ stuck: 1, undocumented: 3, phantom: 1, recordMismatch: 1 });
		expect(counts.undocumentedCodes).toEqual({ "append REQUEST_TIMEOUT": 1, "append USER_NOT_FOUND": 1, "move WRONG_REGION": 1 });
	});
});
