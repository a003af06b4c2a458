import type { Kysely } from "kysely";
import { OutcomeUnknownError } from "../../regions/errors.ts";
import { runBatch } from "../../regions/ownership/batch-transaction.ts";
import type { OwnershipRecords } from "../../regions/ownership/records.ts";
import { ownershipsOf } from "../../regions/ownership/records.ts";
import { placeInBatch } from "../../regions/ownership/write-batch.ts";
import type { StatementGroups } from "../../regions/stores/grouped-transaction.ts";
import type { SendFacts, SendOutcome, SendRequest, Written } from "./sends.ts";
import { sendFactsOf, sendFactsQuery } from "./sends.ts";

/**
 * Group commit of sends, as sv-money commits transfers (services/sv-money/transfer-batches.ts):
 * the sends waiting are one transaction whatever their number, in two round trips
 * (regions/stores/grouped-transaction.ts): the ownership rows of their users, read under a shared
 * lock (a move's freeze waits for the batch, as for any fenced write), with what their sends are
 * written from; then the set's writes (sends.ts) with the COMMIT. Up to `lanes`
 * batches run at once, a new one as soon as a lane is free; a send waits only while a running
 * batch carries a send of its user, so a user's notices are numbered in order from what the last
 * batch committed, and two batches of a node never wait on each other's rows. A batch that meets
 * another node's (a duplicate key) or a deadlock runs again from the start, nothing of it
 * applied. A send whose user's row does not say "active here" at the caller's epoch goes to
 * `alone` (the fenced path, which settles the row with the directory or waits out a move), as
 * does every send of a batch the store refused for another reason: alone, only a send's own
 * error reaches its caller.
 */

export interface BatchedSend {
	req: SendRequest;
	/** The epoch the caller routed by: an older one than the user's row is refused (WRONG_REGION). */
	callerEpoch: number | undefined;
}

export interface SendBatchesOptions {
	region: string;
	/** The region database, past any open transaction. */
	db: Kysely<any>;
	records: OwnershipRecords;
	/** Writes a set of sends of users this transaction holds as "active here", and commits it. */
	write: (trx: Kysely<any>, groups: StatementGroups, reqs: SendRequest[], facts: SendFacts) => Promise<Written[]>;
	/** Hears what a batch wrote once it committed. */
	committed: (outcomes: SendOutcome[]) => void;
	/** The fenced one-send path. */
	alone: (job: BatchedSend) => Promise<SendOutcome>;
	/** Batches in progress at once, each on its own connection (SQLite: 1). */
	lanes: number;
	maxSize: number;
	/** Most bytes of template data in one batch: its statements carry each value several times (rendered, queued). */
	maxDataBytes: number;
}

type Decision = Written | { kind: "alone" };

/** A send waiting for its batch, its template data's size, and what answers its caller once the batch decided. */
type Waiting = BatchedSend & { bytes: number; settle: (d: Decision) => void };

/** Runs of a batch the database rolled back before its sends go the fenced way one by one. */
const BATCH_ATTEMPTS = 4;

export class SendBatches {
	private readonly opts: SendBatchesOptions;
	private readonly waiting: Waiting[] = [];
	/** Users a running batch carries a send of. */
	private readonly busy = new Set<string>();
	private running = 0;
	/** Batches committed, sends they carried, batches run again: for benches and tests. */
	readonly stats = { batches: 0, sends: 0, reruns: 0 };

	constructor(opts: SendBatchesOptions) {
		this.opts = opts;
	}

	submit(job: BatchedSend): Promise<SendOutcome> {
		return new Promise((resolve, reject) => {
			const settle = (d: Decision) => {
				if (d.kind === "done") resolve(d.outcome);
				else if (d.kind === "failed") reject(d.error);
				else this.opts.alone(job).then(resolve, reject);
			};
			this.waiting.push({ ...job, bytes: dataBytes(job.req.data), settle });
			this.start();
		});
	}

	/** Starts batches while a lane is free and a send waits whose user no running batch carries. */
	private start(): void {
		while (this.running < this.opts.lanes) {
			const jobs: Waiting[] = [];
			let bytes = 0;
			for (let i = 0; i < this.waiting.length && jobs.length < this.opts.maxSize && bytes < this.opts.maxDataBytes; ) {
				const job = this.waiting[i]!;
				if (this.busy.has(job.req.userId)) i++;
				else {
					this.waiting.splice(i, 1);
					jobs.push(job);
					bytes += job.bytes;
				}
			}
			if (!jobs.length) return;
			this.running++;
			for (const job of jobs) this.busy.add(job.req.userId);
			void this.run(jobs);
		}
	}

	private async run(jobs: Waiting[]): Promise<void> {
		const decisions = await this.decide(jobs);
		jobs.forEach((job, i) => {
			job.settle(decisions[i]!);
		});
		for (const job of jobs) this.busy.delete(job.req.userId);
		this.running--;
		this.start();
		const written = decisions.flatMap(d => (d.kind === "done" ? [d.outcome] : []));
		if (written.length) this.opts.committed(written);
	}

	private async decide(jobs: Waiting[]): Promise<Decision[]> {
		const run = await runBatch(
			this.opts.db,
			(trx, groups) => this.apply(trx, groups, jobs),
			BATCH_ATTEMPTS,
			() => this.stats.reruns++
		);
		if (run.kind === "committed") {
			this.stats.batches++;
			this.stats.sends += run.value.filter(d => d.kind === "done").length;
			return run.value;
		}
		if (run.kind === "unknown")
			return jobs.map(j => ({
				kind: "failed",
				error: new OutcomeUnknownError(j.req.userId, "a notice", `its commit failed: ${(run.error as Error).message}`)
			}));
		// Alone, only a send's own error reaches its caller.
		return jobs.map(() => ({ kind: "alone" }));
	}

	/** The batch inside its transaction: the users' rows decide which sends it writes. */
	private async apply(trx: Kysely<any>, groups: StatementGroups, jobs: Waiting[]): Promise<Decision[]> {
		const { region, records } = this.opts;
		const users = [...new Set(jobs.map(j => j.req.userId))];
		// One round trip, the statements running in order: the facts are read once the rows' locks are granted.
		const [rows, factRows] = await groups.run([records.readManyQuery(trx, users, "share"), sendFactsQuery(trx, users)]);
		const owners = ownershipsOf(rows!.rows);
		const decisions: Decision[] = jobs.map(() => ({ kind: "alone" }));
		const live: number[] = [];
		jobs.forEach((job, i) => {
			const place = placeInBatch(owners.get(job.req.userId), job.callerEpoch, job.req.userId, region);
			if (place.kind === "member") live.push(i);
			else decisions[i] = place;
		});
		if (!live.length) return decisions;
		const written = await this.opts.write(
			trx,
			groups,
			live.map(i => jobs[i]!.req),
			sendFactsOf(users, factRows!.rows)
		);
		live.forEach((i, n) => {
			decisions[i] = written[n]!;
		});
		return decisions;
	}
}

/** The size of a send's template data: its keys and values as text. */
function dataBytes(data: SendRequest["data"]): number {
	let bytes = 0;
	for (const key in data) bytes += key.length + String(data[key]).length;
	return bytes;
}
