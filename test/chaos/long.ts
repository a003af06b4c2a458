/**
 * Issue #10, long version (`npm run test:chaos`): every scenario, each on a fresh cluster, one
 * table line and one JSON line per scenario, then the table in Markdown (for the README).
 * Exit code 1 when any invariant is broken. About 35 minutes with the defaults (2–3 per scenario).
 *
 * Env: CHAOS_SECONDS (load per scenario, default 60), CHAOS_USERS (50), CHAOS_RATE (60 appends/s),
 * CHAOS_SEED, CHAOS_ONLY (comma-separated scenario names), CHAOS_KEEP_DIR (keep node and server
 * logs there), CHAOS_VERBOSE (print events as they happen). `--only a,b` works too.
 */
import { INVARIANTS, invariants, tableHeader } from "./checker.ts";
import type { ScenarioResult } from "./run.ts";
import { countsJson, LONG, runScenario, SCENARIOS, scenario } from "./run.ts";

process.env.EDGEHOME_LOG_LEVEL ??= "warn";
process.env.EDGEHOME_LOG_FORMAT ??= "json";

const arg = process.argv.indexOf("--only");
const only = (arg > 0 ? process.argv[arg + 1] : process.env.CHAOS_ONLY)
	?.split(",")
	.map(s => s.trim())
	.filter(Boolean);
const chosen = only?.length ? only.map(scenario) : SCENARIOS;
const num = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);
const seed = num("CHAOS_SEED", Math.floor(Math.random() * 2 ** 31));
const opts = {
	...LONG,
	loadSeconds: num("CHAOS_SECONDS", LONG.loadSeconds),
	users: num("CHAOS_USERS", LONG.users),
	rate: num("CHAOS_RATE", LONG.rate),
	keepDir: process.env.CHAOS_KEEP_DIR
};

const abort = new AbortController();
process.on("SIGINT", () => {
	if (abort.signal.aborted) process.exit(130);
	console.error("interrupted: healing, checking and cleaning up the current scenario (Ctrl-C again to leave it behind)");
	abort.abort();
});

console.log(`issue #10 chaos run: ${chosen.length} scenarios, ${opts.users} users, ${opts.rate} appends/s for ${opts.loadSeconds} s each, seed ${seed}`);
console.log(tableHeader());
const results: ScenarioResult[] = [];
for (const sc of chosen) {
	if (abort.signal.aborted) break;
	const started = Date.now();
	try {
		const r = await runScenario(sc, { ...opts, seed, abort: abort.signal, log: process.env.CHAOS_VERBOSE ? line => console.error(line) : undefined });
		results.push(r);
		console.log(r.line);
		console.log(`JSON ${countsJson(r)}`);
		const broken = !r.skipped && INVARIANTS.some(k => r.counts[k] > 0);
		if (broken) {
			for (const [what, lines] of Object.entries(r.samples)) console.log(`  ${what}: ${lines.join(" | ")}`);
			console.log(`  events: ${r.events.join(" | ")}`);
		}
	} catch (err) {
		console.log(`${sc.name.padEnd(22)} harness error after ${Math.round((Date.now() - started) / 1000)} s: ${(err as Error).stack ?? err}`);
		results.push({
			scenario: sc.name,
			seed,
			counts: undefined as never,
			samples: {},
			events: [],
			line: "",
			skipped: `harness error: ${(err as Error).message}`
		});
	}
}

const cell = (r: ScenarioResult, k: (typeof INVARIANTS)[number]) => String(invariants(r.counts)[k]);
console.log(
	"\n| scenario | appends ok/ops | moves ok/ops | lost | duplicated | users in 2 regions | old-home writes after flip | stuck moving | undocumented codes |"
);
console.log("|---|---|---|---|---|---|---|---|---|");
for (const r of results) {
	if (r.skipped) {
		console.log(`| ${r.scenario} | — | — | — | — | — | — | — | skipped: ${r.skipped} |`);
		continue;
	}
	const c = r.counts;
	const codes = Object.entries(c.undocumentedCodes)
		.map(([code, n]) => `${code} ×${n}`)
		.join(", ");
	const illegal = `${c.oldHomeAfterFlip}${c.notYetHome ? ` (+${c.notYetHome} before it was home)` : ""}${c.unverifiable ? ` (${c.unverifiable} in a gap of the record, not judged)` : ""}`;
	console.log(
		`| ${r.scenario} | ${c.appendsOk}/${c.appends} | ${c.movesOk}/${c.moves} | ${cell(r, "lost")} | ${cell(r, "duplicated")} | ${cell(r, "doubleHomed")} | ${illegal} | ${cell(r, "stuck")} | ${c.undocumented}${codes ? ` (${codes})` : ""} |`
	);
}
const failed = results.some(r => r.skipped?.startsWith("harness error") || (!r.skipped && INVARIANTS.some(k => r.counts[k] > 0)));
process.exit(abort.signal.aborted ? 130 : failed ? 1 : 0);
