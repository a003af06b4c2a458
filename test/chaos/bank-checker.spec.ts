import { describe, expect, it } from "vitest";
import type { BankInput, TransferRow } from "./bank-checker.ts";
import { BANK_INVARIANTS, bankInvariants, checkBank } from "./bank-checker.ts";

const zero = Object.fromEntries(BANK_INVARIANTS.map(k => [k, 0]));
const [U1, U2] = ["u1", "u2"];

/** u1 (home r1) paid u2 (home r2) 100 EUR across regions, both seeded with 1000: a settled, whole run. */
function run(): BankInput {
	const payer: TransferRow = {
		owner_id: U1,
		id: "t1",
		kind: "transfer",
		from_id: U1,
		to_id: U2,
		from_region: "r1",
		to_region: "r2",
		amount: "100",
		currency: "EUR",
		status: "completed",
		reason: null,
		idempotency_key: "k1"
	};
	const entry = (owner: string, total: string) => ({ transfer_id: "t1", account_owner: owner, kind: "transfer", currency: "EUR", n: 1, total });
	const account = (owner: string, balance: string) => ({
		owner_id: owner,
		currency: "EUR",
		kind: owner.startsWith("sys:") ? owner.split(":")[1]! : "user",
		balance,
		held: "0"
	});
	return {
		regions: ["r1", "r2"],
		users: [U1, U2],
		homes: { [U1]: "r1", [U2]: "r2" },
		transfers: [
			{
				key: "k1",
				payer: U1,
				payee: U2,
				amount: "100",
				currency: "EUR",
				cross: true,
				attempts: [{ phase: "load", entry: "r1/svc", invokeMs: 1, completeMs: 2, outcome: "ok", transferId: "t1", replayed: false }]
			}
		],
		reuses: [],
		issued: { EUR: 2000n },
		tables: {
			r1: {
				accounts: [account(U1, "900"), account("sys:in-transit:3", "100"), account("sys:issuance:1", "-1000")],
				transfers: [payer],
				entries: [entry(U1, "-100"), entry("sys:in-transit:3", "100")],
				outbox: 0
			},
			r2: {
				accounts: [account(U2, "1100"), account("sys:in-transit:5", "-100"), account("sys:issuance:2", "-1000")],
				transfers: [{ ...payer, owner_id: U2, idempotency_key: null }],
				entries: [entry("sys:in-transit:5", "-100"), entry(U2, "100")],
				outbox: 0
			}
		},
		reconciliations: { r1: { ok: true }, r2: { ok: true } }
	};
}

describe("the bank test's checker", () => {
	it("finds nothing wrong with a whole run", () => {
		const { counts } = checkBank(run());
		expect(bankInvariants(counts)).toEqual(zero);
		expect(counts).toMatchObject({ transfers: 1, ok: 1, crossRegion: 1, byStatus: { completed: 1 } });
	});

	it("sees a credit applied twice: two payee copies, money made", () => {
		const input = run();
		const r2 = input.tables.r2!;
		r2.transfers.push({ ...r2.transfers[0]! });
		r2.entries.push({ ...r2.entries[1]! });
		r2.accounts[0]!.balance = "1200";
		expect(bankInvariants(checkBank(input).counts)).toMatchObject({ creditedTwice: 1, entryMismatch: 1, conservation: 1 });
	});

	it("sees an acknowledged transfer lost, and a stuck one", () => {
		const lost = run();
		lost.tables.r1!.transfers = [];
		expect(bankInvariants(checkBank(lost).counts)).toMatchObject({ lost: 1, orphanCredits: 1 });
		const stuck = run();
		stuck.tables.r1!.transfers[0]!.status = "pending";
		expect(bankInvariants(checkBank(stuck).counts)).toMatchObject({ stuck: 1 });
	});

	it("sees money left in transit, and a payer's copy outside the payer's home", () => {
		const input = run();
		input.tables.r2!.accounts[1]!.balance = "0";
		input.homes[U1] = "r2";
		expect(bankInvariants(checkBank(input).counts)).toMatchObject({ inTransitLeft: 1, conservation: 1, outsideHome: 1, strayAccounts: 1 });
	});

	it("holds refusals and keys to their word", () => {
		const input = run();
		const op = input.transfers[0]!;
		// Refused before it was sent again and applied: only an unknown outcome may have run.
		op.attempts = [
			{ phase: "load", entry: "r1/svc", invokeMs: 1, outcome: "fail", code: "USER_MOVING" },
			{ phase: "healed", entry: "r1/svc", invokeMs: 3, outcome: "ok", transferId: "t1", replayed: true }
		];
		input.reuses.push({ key: "k1", payer: U1, attempt: { phase: "replay", entry: "r2/svc", invokeMs: 4, outcome: "ok", transferId: "t9" } });
		expect(bankInvariants(checkBank(input).counts)).toMatchObject({ failedButApplied: 1, reuseAccepted: 1 });
		op.attempts[0] = { phase: "load", entry: "r1/svc", invokeMs: 1, outcome: "unknown", code: "OUTCOME_UNKNOWN" };
		expect(bankInvariants(checkBank(input).counts)).toMatchObject({ failedButApplied: 0 });
		op.attempts = [{ phase: "load", entry: "r1/svc", invokeMs: 1, outcome: "refused", code: "INSUFFICIENT_FUNDS" }];
		expect(bankInvariants(checkBank(input).counts)).toMatchObject({ refusedButApplied: 1 });
	});
});
