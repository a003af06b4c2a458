import type { Collection, Db, Filter } from "mongodb";
import { MongoClient, MongoServerError } from "mongodb";
import type { AuditOutcome } from "../../mixins/audit.mixin.ts";
import { ChainConflictError } from "./errors.ts";
import type { LogRecord } from "./record.ts";
import type { Append, ChainHead, Checkpoint, LogFilter, LogStore } from "./store.ts";

interface LogDoc {
	/** The record's seq. */
	_id: number;
	region: string;
	id: string;
	at: number;
	/** `at` as a date: what the TTL index expires on. */
	time: Date;
	actor: string;
	action: string;
	target: string | null;
	outcome: string;
	requestId: string | null;
	traceId: string | null;
	ipHash: string | null;
	/** As JSON text: detail keys may hold `.` or `$`, which MongoDB field names should not. */
	detail: string | null;
	loggedAt: number;
	prevHash: string;
	hash: string;
}

type CheckpointDoc = Omit<Checkpoint, "region"> & { _id: string };

/** MongoDB's duplicate key error. */
const DUPLICATE_KEY = 11000;
/** An index of that name exists with other options (a TTL changed with the retention). */
const INDEX_OPTIONS_CONFLICT = 85;

const toDoc = ({ seq, detail, ...r }: LogRecord): LogDoc => ({ ...r, _id: seq, time: new Date(r.at), detail: detail === null ? null : JSON.stringify(detail) });

const fromDoc = ({ _id, time: _expires, detail, outcome, ...d }: LogDoc): LogRecord => ({
	...d,
	seq: _id,
	outcome: outcome as AuditOutcome,
	detail: detail === null ? null : (JSON.parse(detail) as Record<string, unknown>)
});

/**
 * The audit chain in MongoDB: a collection per region (`audit_<region>`), documents keyed by seq,
 * indexes on time, actor, target and request id, and a TTL index as a backstop behind the
 * retention sweep: it expires a record `ttlGraceMs` after the sweep should have, so the sweep's
 * checkpoint is written before anything it covers disappears.
 */
export class MongoLogStore implements LogStore {
	private readonly client: MongoClient;
	private readonly db: Db;
	private readonly ttlGraceMs: number;

	private constructor(client: MongoClient, ttlGraceMs: number) {
		this.client = client;
		this.db = client.db();
		this.ttlGraceMs = ttlGraceMs;
	}

	/** `url` names the database (`mongodb://host:27017/edgehome_cn_east`). */
	static async open(url: string, opts: { ttlGraceMs: number; timeoutMs: number }): Promise<MongoLogStore> {
		const client = new MongoClient(url, { serverSelectionTimeoutMS: opts.timeoutMs, connectTimeoutMS: opts.timeoutMs });
		await client.connect();
		return new MongoLogStore(client, opts.ttlGraceMs);
	}

	private log(region: string): Collection<LogDoc> {
		return this.db.collection<LogDoc>(`audit_${region.replace(/-/g, "_")}`);
	}

	private get checkpoints(): Collection<CheckpointDoc> {
		return this.db.collection<CheckpointDoc>("audit_checkpoints");
	}

	async prepare(region: string, retentionMs: number): Promise<void> {
		const log = this.log(region);
		await log.createIndex({ id: 1 }, { unique: true, name: "id" });
		await log.createIndex({ at: -1, _id: -1 }, { name: "at" });
		await log.createIndex({ actor: 1, at: -1 }, { name: "actor" });
		await log.createIndex({ target: 1, at: -1 }, { name: "target" });
		await log.createIndex({ requestId: 1 }, { name: "request" });
		const expireAfterSeconds = Math.ceil((retentionMs + this.ttlGraceMs) / 1000);
		await log.createIndex({ time: 1 }, { name: "ttl", expireAfterSeconds }).catch(async err => {
			if (!(err instanceof MongoServerError) || err.code !== INDEX_OPTIONS_CONFLICT) throw err;
			await this.db.command({ collMod: log.collectionName, index: { name: "ttl", expireAfterSeconds } });
		});
	}

	async head(region: string): Promise<ChainHead | undefined> {
		const last = await this.log(region)
			.find({}, { projection: { _id: 1, hash: 1 } })
			.sort({ _id: -1 })
			.limit(1)
			.next();
		if (last) return { seq: last._id, hash: last.hash };
		const mark = await this.checkpoint(region);
		return mark ? { seq: mark.seq, hash: mark.hash } : undefined;
	}

	async existing(region: string, ids: readonly string[]): Promise<Set<string>> {
		if (ids.length === 0) return new Set();
		const docs = await this.log(region)
			.find({ id: { $in: [...ids] } }, { projection: { id: 1 } })
			.toArray();
		return new Set(docs.map(d => d.id));
	}

	prepareAppend(region: string, records: readonly LogRecord[]): Append {
		if (records.length === 0) return async () => {};
		const docs = records.map(toDoc);
		return async () => {
			await this.log(region)
				.insertMany(docs, { ordered: true })
				.catch(err => {
					if ((err as { code?: number }).code === DUPLICATE_KEY) throw new ChainConflictError(region);
					throw err;
				});
		};
	}

	async query(region: string, f: LogFilter, limit: number): Promise<LogRecord[]> {
		const and: Filter<LogDoc>[] = [];
		if (f.actor !== undefined) and.push({ actor: f.actor });
		if (f.target !== undefined) and.push({ target: f.target });
		if (f.action !== undefined) and.push({ action: f.action });
		if (f.actions !== undefined) and.push({ action: { $in: [...f.actions] } });
		if (f.requestId !== undefined) and.push({ requestId: f.requestId });
		if (f.from !== undefined) and.push({ at: { $gte: f.from } });
		if (f.to !== undefined) and.push({ at: { $lt: f.to } });
		if (f.user !== undefined) and.push({ $or: [{ actor: f.user }, { target: f.user }] });
		const p = f.after;
		if (p) {
			if (region < p.region) and.push({ at: { $lte: p.at } });
			else if (region > p.region) and.push({ at: { $lt: p.at } });
			else and.push({ $or: [{ at: { $lt: p.at } }, { at: p.at, _id: { $lt: p.seq } }] });
		}
		const docs = await this.log(region)
			.find(and.length ? { $and: and } : {})
			.sort({ at: -1, _id: -1 })
			.limit(limit)
			.toArray();
		return docs.map(fromDoc);
	}

	async scan(region: string, afterSeq: number, limit: number): Promise<LogRecord[]> {
		const docs = await this.log(region)
			.find({ _id: { $gt: afterSeq } })
			.sort({ _id: 1 })
			.limit(limit)
			.toArray();
		return docs.map(fromDoc);
	}

	async checkpoint(region: string): Promise<Checkpoint | undefined> {
		const doc = await this.checkpoints.findOne({ _id: region });
		if (!doc) return undefined;
		const { _id, ...rest } = doc;
		return { region: _id, ...rest };
	}

	async saveCheckpoint(c: Checkpoint): Promise<void> {
		const { region, ...rest } = c;
		await this.checkpoints.replaceOne({ _id: region }, rest, { upsert: true });
	}

	async lastBefore(region: string, cutoff: number): Promise<number> {
		const kept = await this.log(region)
			.find({ at: { $gte: cutoff } }, { projection: { _id: 1 } })
			.sort({ _id: 1 })
			.limit(1)
			.next();
		if (kept) return kept._id - 1;
		return (await this.head(region))?.seq ?? 0;
	}

	async at(region: string, seq: number): Promise<LogRecord | undefined> {
		const doc = await this.log(region).findOne({ _id: seq });
		return doc ? fromDoc(doc) : undefined;
	}

	async deleteUpTo(region: string, upTo: number, limit: number): Promise<number> {
		const first = await this.log(region)
			.find({}, { projection: { _id: 1 } })
			.sort({ _id: 1 })
			.limit(1)
			.next();
		if (!first) return 0;
		const done = await this.log(region).deleteMany({ _id: { $lte: Math.min(upTo, first._id + limit - 1) } });
		return done.deletedCount;
	}

	async close(): Promise<void> {
		await this.client.close();
	}
}
