import { newEnforcer, newModelFromString } from "casbin";
import { describe, expect, it } from "vitest";
import { MODEL_TEXT, USER_ROLE } from "../../../../services/auth-rbac/model.ts";
import { PermissionIndex } from "../../../../services/auth-rbac/permission-index.ts";

/** A small deterministic generator, so a failure can be replayed. */
function prng(seed: number): (n: number) => number {
	let s = seed;
	return n => {
		s = (s * 1103515245 + 12345) % 2 ** 31;
		return s % n;
	};
}

describe("PermissionIndex", () => {
	it("decides exactly as casbin's matcher on a random policy with a role hierarchy, wildcards and the implicit user role", async () => {
		const pick = prng(42);
		const roles = [USER_ROLE, ...Array.from({ length: 30 }, (_, i) => `role${i}`)];
		const resources = Array.from({ length: 12 }, (_, i) => `res${i}`);
		const actions = ["read", "write", "move", "delete"];
		const users = Array.from({ length: 40 }, (_, i) => `u${String(i).padStart(25, "0")}`);
		const enforcer = await newEnforcer(newModelFromString(MODEL_TEXT));
		for (let i = 0; i < 400; i++)
			await enforcer.addPolicy(roles[pick(roles.length)]!, resources[pick(resources.length)]!, pick(8) === 0 ? "*" : actions[pick(actions.length)]!);
		// Inheritance only from higher to lower numbers: a hierarchy, not a cycle.
		for (let i = 0; i < 25; i++) {
			const a = 1 + pick(29);
			const b = 1 + pick(a);
			if (b < a + 1 && a !== b) await enforcer.addGroupingPolicy(`role${a}`, `role${b - 1}`);
		}
		for (const u of users) for (let k = pick(3); k > 0; k--) await enforcer.addGroupingPolicy(u, roles[1 + pick(roles.length - 1)]!);
		const index = await PermissionIndex.of(enforcer);
		let allowed = 0;
		let checked = 0;
		for (const u of [...users, ...roles])
			for (const r of [...resources, "elsewhere"])
				for (const a of [...actions, "*"]) {
					const expected = enforcer.enforceSync(u, r, a);
					expect(index.allows(u, r, a), `${u} ${r} ${a}`).toBe(expected);
					if (expected) allowed++;
					checked++;
				}
		// Both outcomes are well represented, or the comparison proves little.
		expect(allowed).toBeGreaterThan(checked / 10);
		expect(checked - allowed).toBeGreaterThan(checked / 10);
	});
});
