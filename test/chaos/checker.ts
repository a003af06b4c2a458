import { documented, ENTRY_NODE_KILLED, STILL_RUNNING } from "./codes.ts";

/** One operation of the history: invoked at `invokeMs`, settled at `completeMs` (harness clock). */
export interface Op {
	kind: "append" | "move";
	/** The append's op id (unique per run), or the move's sequence number. */
	id: string;
	userId: string;
	/** For a move: the region asked for. */
	to?: string;
	/** The node it entered through. */
	entry: string;
	invokeMs: number;
	completeMs?: number;
	/** ok; fail (an error code); unknown (no answer: entry node killed, still running, OUTCOME_UNKNOWN…). */
	outcome?: "ok" | "fail" | "unknown";
	/** The error's type as the client saw it, or a harness outcome (codes.ts). */
	code?: string;
	message?: string;
	/** Where an acknowledged append says it was written. */
	region?: string;
}

/** A user's home over time, from the origin bucket's change record (server timestamps, µs). */
export interface HomeChange {
	atUs: number;
	/** undefined: the entry was deleted. */
	region: string | undefined;
	epoch?: number;
	state?: string;
}

export interface CheckInput {
	users: string[];
	regions: string[];
	history: Op[];
	/** The live record of the origin was recreated this often; the origin's sequence went back this often (writes lost). */
	recorderRestarts?: number;
	originRegressions?: number;
	/** Each user's entry read from the origin bucket after healing. */
	finalHomes: Record<string, { region: string; epoch: number; state: string } | undefined>;
	/** Users still `moving` in the origin bucket when the convergence wait ended. */
	stuck: string[];
	/** Users whose move journal was still open in the origin bucket then. */
	openJournals?: string[];
	/** The ledger rows of each region's database, read directly. */
	rows: Record<string, { opId: string; userId: string }[]>;
	/** Each region's audit rows: every insert the ledger made there, with the server's time. */
	audit: Record<string, { opId: string; userId: string; region: string; atUs: number }[]>;
	/** Per user, ordered by time. */
	timeline: Record<string, HomeChange[]>;
	/** Windows in which the record lost changes (superseded before they were read): see `unverifiable`. */
	recordGaps?: { fromUs: number; toUs: number }[];
}

/** The invariants of issue #10 (all must be 0) and what explains them. */
export interface Counts {
	appends: number;
	appendsOk: number;
	appendsFailed: number;
	appendsUnknown: number;
	moves: number;
	movesOk: number;
	/** (1) acknowledged appends absent from the user's final home. */
	lost: number;
	/** (1) op ids with more than one row in the user's final home (acknowledged or not). */
	duplicated: number;
	/** (2) users with rows in a region other than their final home … */
	doubleHomed: number;
	/** … and those rows. */
	rowsOutsideHome: number;
	/** (3) audit rows written in a region that was not the user's home at that moment … */
	illegalWrites: number;
	/** … by a region that had been the home and no longer was (the old home after the flip) … */
	oldHomeAfterFlip: number;
	/** … by a region that was not (yet) the home. */
	notYetHome: number;
	/**
	 * Audit rows that cannot be judged: written inside a window where the record lost changes, by a
	 * user with a change recorded in that window (the lost one may be what made the region home).
	 * Informational, counted apart from illegalWrites; a run that has any prints them.
	 */
	unverifiable: number;
	/** (4) users still moving in the origin bucket after the convergence wait … */
	stuck: number;
	/** … of them with no journal left (no recovery will ever end their move), and journals still open. */
	stuckWithoutJournal: number;
	openJournals: number;
	/** (5) operations that ended with an undocumented code … */
	undocumented: number;
	/** … by `<kind> <code>`. */
	undocumentedCodes: Record<string, number>;
	/** Harness health (must be 0): rows of op ids never issued; users whose live record ends elsewhere than the origin. */
	phantom: number;
	recordMismatch: number;
	/** Informational: the origin's change record was recreated (after a primary restart); the origin stream's sequence went back (a restarted server lost acknowledged directory writes). */
	recorderRestarts: number;
	originRegressions: number;
	/** Informational: appends that ended in an error (or unknown) yet are in the home. */
	failedButPresent: number;
	unknownPresent: number;
	/** Informational: every code seen, documented or not. */
	codes: Record<string, number>;
}

/** The invariant counts every scenario must keep at zero. */
export const INVARIANTS = ["lost", "duplicated", "doubleHomed", "illegalWrites", "stuck", "undocumented", "phantom", "recordMismatch"] as const;

export function invariants(c: Counts): Record<(typeof INVARIANTS)[number], number> {
	return Object.fromEntries(INVARIANTS.map(k => [k, c[k]])) as Record<(typeof INVARIANTS)[number], number>;
}

export interface CheckResult {
	counts: Counts;
	/** A few examples of each anomaly, for whoever reads a failure. */
	samples: Record<string, string[]>;
}

/** Harness outcomes that are not the product's answer: the outcome is unknown, and no code was given. */
const HARNESS_OUTCOMES = new Set([ENTRY_NODE_KILLED, STILL_RUNNING]);

/** Checks a finished run. Pure: everything it judges is in `input`. */
export function check(input: CheckInput): CheckResult {
	const samples: Record<string, string[]> = {};
	const sample = (what: string, line: string) => {
		const list = (samples[what] ??= []);
		if (list.length < 5) list.push(line);
	};
	const appends = input.history.filter(o => o.kind === "append");
	const moves = input.history.filter(o => o.kind === "move");
	const issued = new Map(appends.map(o => [o.id, o]));

	// (5) codes.
	const codes: Record<string, number> = {};
	const undocumentedCodes: Record<string, number> = {};
	let undocumented = 0;
	for (const op of input.history) {
		if (op.outcome === "ok" || op.code === undefined || HARNESS_OUTCOMES.has(op.code)) continue;
		const label = `${op.kind} ${op.code}`;
		codes[label] = (codes[label] ?? 0) + 1;
		if (!documented(op.kind, op.code)) {
			undocumented++;
			undocumentedCodes[label] = (undocumentedCodes[label] ?? 0) + 1;
			sample("undocumented", `${label} ${op.id} user ${op.userId} via ${op.entry}: ${op.message ?? ""}`);
		}
	}

	// Rows per op id in the user's final home, and rows outside it.
	const inHome = new Map<string, number>();
	const outside = new Map<string, number>();
	let phantom = 0;
	let rowsOutsideHome = 0;
	for (const region of input.regions)
		for (const row of input.rows[region] ?? []) {
			if (!issued.has(row.opId)) {
				phantom++;
				sample("phantom", `${row.opId} in ${region}`);
			}
			if (input.finalHomes[row.userId]?.region === region) inHome.set(row.opId, (inHome.get(row.opId) ?? 0) + 1);
			else {
				rowsOutsideHome++;
				outside.set(row.userId, (outside.get(row.userId) ?? 0) + 1);
				sample("outsideHome", `${row.opId} of ${row.userId} in ${region}, home ${input.finalHomes[row.userId]?.region ?? "(none)"}`);
			}
		}

	// (1) every acknowledged append exactly once in the final home; none twice.
	let lost = 0;
	let duplicated = 0;
	let failedButPresent = 0;
	let unknownPresent = 0;
	for (const op of appends) {
		const n = inHome.get(op.id) ?? 0;
		if (op.outcome === "ok" && n === 0) {
			lost++;
			sample(
				"lost",
				`${op.id} of ${op.userId} acknowledged from ${op.region} at ${op.completeMs}, home now ${input.finalHomes[op.userId]?.region ?? "(none)"}`
			);
		}
		if (n > 1) {
			duplicated++;
			sample("duplicated", `${op.id} of ${op.userId}: ${n} rows (${op.outcome} ${op.code ?? ""})`);
		}
		if (n > 0 && op.outcome === "fail") failedButPresent++;
		if (n > 0 && op.outcome === "unknown") unknownPresent++;
	}

	// (3) a write in region R at time t is legal only if R was the user's home at t.
	let oldHomeAfterFlip = 0;
	let notYetHome = 0;
	let unverifiable = 0;
	const gaps = input.recordGaps ?? [];
	for (const region of input.regions)
		for (const row of input.audit[region] ?? []) {
			const line = input.timeline[row.userId] ?? [];
			// A change lost in a gap was superseded by a later one of the same user, recorded within the gap.
			const blind = gaps.some(g => g.fromUs < row.atUs && row.atUs <= g.toUs && line.some(c => g.fromUs < c.atUs && c.atUs <= g.toUs));
			let home: string | undefined;
			let wasHome = false;
			for (const change of line) {
				if (change.atUs > row.atUs) break;
				home = change.region;
				if (change.region === region) wasHome = true;
			}
			if (home === region) continue;
			if (blind) {
				unverifiable++;
				sample(
					"unverifiable",
					`${row.opId} of ${row.userId} written in ${region} at ${new Date(row.atUs / 1000).toISOString()}, inside a gap of the record; recorded home then ${home ?? "(none)"}`
				);
				continue;
			}
			if (wasHome) oldHomeAfterFlip++;
			else notYetHome++;
			const at = new Date(row.atUs / 1000).toISOString();
			sample("illegalWrites", `${row.opId} of ${row.userId} written in ${region} at ${at} (${row.atUs} µs); home then ${home ?? "(none)"}`);
		}

	// Harness health: the live record must end where the origin says each user is.
	let recordMismatch = 0;
	for (const userId of input.users) {
		const last = input.timeline[userId]?.at(-1);
		const final = input.finalHomes[userId];
		if (last?.region !== final?.region || last?.epoch !== final?.epoch || last?.state !== final?.state) {
			recordMismatch++;
			sample("recordMismatch", `${userId}: record ${JSON.stringify(last)}, origin ${JSON.stringify(final)}`);
		}
	}
	for (const userId of input.stuck) sample("stuck", `${userId}: ${JSON.stringify(input.finalHomes[userId])}`);

	const counts: Counts = {
		appends: appends.length,
		appendsOk: appends.filter(o => o.outcome === "ok").length,
		appendsFailed: appends.filter(o => o.outcome === "fail").length,
		appendsUnknown: appends.filter(o => o.outcome === "unknown").length,
		moves: moves.length,
		movesOk: moves.filter(o => o.outcome === "ok").length,
		lost,
		duplicated,
		doubleHomed: outside.size,
		rowsOutsideHome,
		illegalWrites: oldHomeAfterFlip + notYetHome,
		oldHomeAfterFlip,
		notYetHome,
		unverifiable,
		stuck: input.stuck.length,
		stuckWithoutJournal: input.stuck.filter(u => !(input.openJournals ?? []).includes(u)).length,
		openJournals: (input.openJournals ?? []).length,
		undocumented,
		undocumentedCodes,
		phantom,
		recordMismatch,
		recorderRestarts: input.recorderRestarts ?? 0,
		originRegressions: input.originRegressions ?? 0,
		failedButPresent,
		unknownPresent,
		codes
	};
	return { counts, samples };
}

/** Column headings of the one-line-per-scenario table. */
export function tableHeader(): string {
	return [
		"scenario".padEnd(22),
		"appends ok/ops".padEnd(15),
		"moves ok/ops".padEnd(13),
		"lost".padStart(5),
		"dup".padStart(4),
		"2-homed".padStart(8),
		"post-flip".padStart(10),
		"stuck".padStart(6),
		"  undocumented codes"
	].join(" ");
}

/**
 * One scenario's line: ops/ok, lost, duplicated, double-homed users, old-home writes after the flip
 * (`+n`: writes in a region that was not yet the home), stuck, undocumented codes.
 */
export function tableLine(scenario: string, c: Counts): string {
	const codes = Object.entries(c.undocumentedCodes)
		.sort((a, b) => b[1] - a[1])
		.map(([code, n]) => `${code}×${n}`)
		.join(", ");
	return [
		scenario.padEnd(22),
		`${c.appendsOk}/${c.appends}`.padEnd(15),
		`${c.movesOk}/${c.moves}`.padEnd(13),
		String(c.lost).padStart(5),
		String(c.duplicated).padStart(4),
		String(c.doubleHomed).padStart(8),
		`${c.oldHomeAfterFlip}${c.notYetHome ? `+${c.notYetHome}` : ""}${c.unverifiable ? `?${c.unverifiable}` : ""}`.padStart(10),
		String(c.stuck).padStart(6),
		`  ${c.undocumented}${codes ? ` (${codes})` : ""}`
	].join(" ");
}
