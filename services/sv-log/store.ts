import type { LogRecord, Position } from "./record.ts";

/** What a query selects: every given field must match; `from` inclusive, `to` exclusive (ms). */
export interface LogFilter {
	actor?: string;
	target?: string;
	action?: string;
	requestId?: string;
	from?: number;
	to?: number;
	/** Records after this position in listing order (record.ts). */
	after?: Position;
	/** Either the actor or the target is this user (a user's own activity). */
	user?: string;
	/** One of these actions. */
	actions?: readonly string[];
}

/** A signed mark where a region's chain continues after retention deleted what came before it. */
export interface Checkpoint {
	region: string;
	/** The last record deleted; the next one links to its hash. */
	seq: number;
	hash: string;
	at: number;
	/** The key that signed it (a key id of EDGEHOME_PII_KEYS) and the HMAC-SHA256 over the rest. */
	kid: string;
	signature: string;
}

/** A batch's append, ready to run once (LogStore's `prepareAppend`). */
export type Append = () => Promise<void>;

/** The last record of a region's chain, where the next one links. */
export interface ChainHead {
	seq: number;
	hash: string;
}

/**
 * Where a region's audit records are kept: one chain per region, appended to in order and read
 * back in order (verify) or in listing order (queries). Both stores (sql-store.ts, mongo-store.ts)
 * pass one contract suite (test/unit/services/sv-log/contract.ts).
 */
export interface LogStore {
	/** Tables or collections and their indexes, made if missing; `retentionMs` sets a TTL where the store has one. */
	prepare(region: string, retentionMs: number): Promise<void>;
	/** The chain's last record, or the checkpoint's mark when retention left none, or undefined for an empty chain. */
	head(region: string): Promise<ChainHead | undefined>;
	/** Which of these record ids the region holds already. */
	existing(region: string, ids: readonly string[]): Promise<Set<string>>;
	/**
	 * The append of these records, made ready now (rows and statement built) and run when called,
	 * so a batch waiting its turn is prepared while the one before it is written. Running it stores
	 * the records, in order; it throws ChainConflictError when a position or id is taken (another
	 * node appended first): then at most a leading part of them was stored (none in SQL), which
	 * still links, and the caller appends the rest anew from the new head.
	 */
	prepareAppend(region: string, records: readonly LogRecord[]): Append;
	/** Up to `limit` records in listing order. */
	query(region: string, filter: LogFilter, limit: number): Promise<LogRecord[]>;
	/** Up to `limit` records with seq > `afterSeq`, in chain order. */
	scan(region: string, afterSeq: number, limit: number): Promise<LogRecord[]>;
	checkpoint(region: string): Promise<Checkpoint | undefined>;
	saveCheckpoint(checkpoint: Checkpoint): Promise<void>;
	/** The last seq such that every record up to it happened before `cutoff` (0: none). */
	lastBefore(region: string, cutoff: number): Promise<number>;
	/** The record at `seq`, if kept. */
	at(region: string, seq: number): Promise<LogRecord | undefined>;
	/** Deletes up to `limit` records with seq ≤ `upTo`; how many went. */
	deleteUpTo(region: string, upTo: number, limit: number): Promise<number>;
	close(): Promise<void>;
}
