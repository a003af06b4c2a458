import { describe, expect, it } from "vitest";
import { INVARIANTS, invariants, tableHeader } from "./checker.ts";
import type { ScenarioResult } from "./run.ts";
import { countsJson, runScenario, SHORT, scenario } from "./run.ts";

/**
 * Issue #10, short version: a bank of appends on three regions with per-region MariaDB, checked
 * Jepsen-style after healing. The no-fault run proves the harness (it must be zero everywhere);
 * the combined run is what the issue is about. The long version: `npm run test:chaos`.
 * CHAOS_SEED replays a run's choices; CHAOS_KEEP_DIR keeps its logs and whole history; CHAOS_VERBOSE prints events live.
 */
const seed = Number(process.env.CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
const zero = Object.fromEntries(INVARIANTS.map(k => [k, 0]));

function report(r: ScenarioResult): string {
	const samples = Object.entries(r.samples).map(([what, lines]) => `  ${what}:\n${lines.map(l => `    ${l}`).join("\n")}`);
	return [tableHeader(), r.line, `JSON ${countsJson(r)}`, ...samples].join("\n");
}

describe("issue #10: one home, no lost write, under any fault (short)", () => {
	it("no faults, no moves: every invariant holds (the harness itself is sound)", async () => {
		const r = await runScenario(scenario("none"), { ...SHORT, loadSeconds: 10, seed, keepDir: process.env.CHAOS_KEEP_DIR });
		console.info(report(r));
		expect(r.counts.appendsOk, "appends were acknowledged").toBeGreaterThan(200);
		expect(invariants(r.counts), report(r)).toEqual(zero);
	}, 180_000);

	it("everything together with continuous moves: mover kills, NATS and region restarts, a half-dead region", async () => {
		const r = await runScenario(scenario("g-everything+moves"), {
			...SHORT,
			seed,
			keepDir: process.env.CHAOS_KEEP_DIR,
			log: process.env.CHAOS_VERBOSE ? line => console.info(line) : undefined
		});
		console.info(`${report(r)}\n  events:\n${r.events.map(e => `    ${e}`).join("\n")}`);
		expect(r.counts.movesOk, "moves succeeded").toBeGreaterThan(0);
		expect(invariants(r.counts), report(r)).toEqual(zero);
	}, 300_000);
});
