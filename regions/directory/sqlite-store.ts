import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { StatementSync } from "node:sqlite";
import { DatabaseSync } from "node:sqlite";
import { immediateTransaction } from "../stores/sqlite-transaction.ts";
import type { DirectoryChange, DirectoryEntry, DirectoryPage, DirectoryStore, DirectoryWatch, ReadOptions } from "./store.ts";
import { assertAfter, assertKey, assertListBounds, assertPrefix, assertRevision, DirectoryError, deliver } from "./store.ts";

/** How often watchers look for changes written by another connection (another process) to the same file. */
const POLL_MS = 100;
/** Changes read per query while a watcher catches up. */
const CATCH_UP_BATCH = 500;

interface Watcher {
	/** The last revision delivered. */
	cursor: number;
	onChange: (change: DirectoryChange<any>) => void;
}

interface ChangeRow {
	revision: number;
	key: string;
	value: string | null;
}

interface EntryRow {
	key: string;
	value: string;
	revision: number;
}

/**
 * The directory in embedded mode: current entries plus a change log whose autoincrement key is
 * the revision, so watchers replay from any revision and pages follow revision order.
 * Synchronous node:sqlite calls are fine here: rows are tiny and the file is local.
 */
export class SqliteDirectoryStore implements DirectoryStore {
	private readonly db: DatabaseSync;
	private readonly watchers = new Set<Watcher>();
	private readonly stmt: {
		get: StatementSync;
		log: StatementSync;
		upsert: StatementSync;
		remove: StatementSync;
		changesAfter: StatementSync;
		lastRevision: StatementSync;
		page: StatementSync;
	};
	private poller: ReturnType<typeof setInterval> | undefined;
	private pumping = false;
	private pumpAgain = false;
	private closed = false;

	constructor(db: DatabaseSync) {
		this.db = db;
		db.exec(`
			CREATE TABLE IF NOT EXISTS directory_changes (
				revision INTEGER PRIMARY KEY AUTOINCREMENT,
				key TEXT NOT NULL,
				value TEXT
			);
			CREATE TABLE IF NOT EXISTS directory_entries (
				key TEXT PRIMARY KEY,
				value TEXT NOT NULL,
				revision INTEGER NOT NULL UNIQUE
			);
		`);
		this.stmt = {
			get: db.prepare("SELECT key, value, revision FROM directory_entries WHERE key = ?"),
			log: db.prepare("INSERT INTO directory_changes (key, value) VALUES (?, ?)"),
			upsert: db.prepare(
				"INSERT INTO directory_entries (key, value, revision) VALUES (?, ?, ?) " +
					"ON CONFLICT (key) DO UPDATE SET value = excluded.value, revision = excluded.revision"
			),
			remove: db.prepare("DELETE FROM directory_entries WHERE key = ?"),
			changesAfter: db.prepare("SELECT revision, key, value FROM directory_changes WHERE revision > ? ORDER BY revision LIMIT ?"),
			lastRevision: db.prepare("SELECT coalesce(max(revision), 0) AS revision FROM directory_changes"),
			page: db.prepare("SELECT key, value, revision FROM directory_entries " + "WHERE revision > ? AND substr(key, 1, ?) = ? ORDER BY revision LIMIT ?")
		};
	}

	/** One file, no copies: every read is authoritative. */
	async get<T>(key: string, _opts?: ReadOptions): Promise<DirectoryEntry<T> | undefined> {
		assertKey(key);
		const row = this.stmt.get.get(key) as EntryRow | undefined;
		return row && { key: row.key, value: JSON.parse(row.value) as T, revision: row.revision };
	}

	async create<T>(key: string, value: T): Promise<number> {
		assertKey(key);
		const json = encode(value);
		const revision = immediateTransaction(this.db, () => {
			if (this.current(key)) throw new DirectoryError("KEY_EXISTS", `directory key "${key}" already exists`);
			return this.record(key, json);
		});
		this.pump();
		return revision;
	}

	async update<T>(key: string, value: T, revision: number): Promise<number> {
		assertKey(key);
		assertRevision(revision);
		const json = encode(value);
		const next = immediateTransaction(this.db, () => {
			const current = this.current(key);
			if (current?.revision !== revision) throw mismatch(key, revision, current);
			return this.record(key, json);
		});
		this.pump();
		return next;
	}

	async delete(key: string, revision?: number): Promise<void> {
		assertKey(key);
		if (revision !== undefined) assertRevision(revision);
		const changed = immediateTransaction(this.db, () => {
			const current = this.current(key);
			if (revision !== undefined && current?.revision !== revision) throw mismatch(key, revision, current);
			// Deleting an absent key changes nothing, so it leaves nothing in the log either.
			if (!current) return false;
			this.record(key, null);
			return true;
		});
		if (changed) this.pump();
	}

	async list<T>(prefix: string, opts: { afterRevision?: number; limit: number } & ReadOptions): Promise<DirectoryPage<T>> {
		assertPrefix(prefix);
		const { afterRevision = 0, limit } = opts;
		assertListBounds(afterRevision, limit);
		// One row past the page tells whether another page follows.
		const rows = this.stmt.page.all(afterRevision, prefix.length, prefix, limit + 1) as unknown as EntryRow[];
		const entries = rows.slice(0, limit).map(row => ({ key: row.key, value: JSON.parse(row.value) as T, revision: row.revision }));
		return { entries, next: rows.length > limit ? entries[entries.length - 1]!.revision : null };
	}

	async watch<T>(onChange: (change: DirectoryChange<T>) => void, opts: { fromRevision?: number } = {}): Promise<DirectoryWatch> {
		if (opts.fromRevision !== undefined) assertAfter("fromRevision", opts.fromRevision);
		const watcher: Watcher = {
			cursor: opts.fromRevision ?? (this.stmt.lastRevision.get() as { revision: number }).revision,
			onChange: onChange as Watcher["onChange"]
		};
		this.watchers.add(watcher);
		this.poller ??= setInterval(() => this.pump(), POLL_MS).unref();
		this.pump();
		return {
			stop: async () => {
				this.watchers.delete(watcher);
				if (this.watchers.size === 0) this.stopPolling();
			}
		};
	}

	/** The file is the origin: a write commits whenever the store is open. */
	async checkOrigin(): Promise<void> {}

	async close(): Promise<void> {
		if (this.closed) return;
		this.closed = true;
		this.watchers.clear();
		this.stopPolling();
		this.db.close();
	}

	private current(key: string): EntryRow | undefined {
		return this.stmt.get.get(key) as EntryRow | undefined;
	}

	/** Appends the change to the log and applies it to the entries; `null` deletes. Returns the revision. */
	private record(key: string, json: string | null): number {
		const revision = Number(this.stmt.log.run(key, json).lastInsertRowid);
		if (json === null) this.stmt.remove.run(key);
		else this.stmt.upsert.run(key, json, revision);
		return revision;
	}

	/**
	 * Brings every watcher up to the end of the log. A callback that writes re-enters here; that
	 * call only asks for another round, so each watcher still sees changes once and in order.
	 */
	private pump(): void {
		if (this.closed) return;
		if (this.pumping) {
			this.pumpAgain = true;
			return;
		}
		this.pumping = true;
		try {
			do {
				this.pumpAgain = false;
				for (const watcher of this.watchers) this.catchUp(watcher);
			} while (this.pumpAgain && !this.closed);
		} finally {
			this.pumping = false;
		}
	}

	private catchUp(watcher: Watcher): void {
		// A callback may stop this watch or close the store: both take the watcher out of the set.
		while (this.watchers.has(watcher)) {
			const rows = this.stmt.changesAfter.all(watcher.cursor, CATCH_UP_BATCH) as unknown as ChangeRow[];
			for (const row of rows) {
				if (!this.watchers.has(watcher)) return;
				watcher.cursor = row.revision;
				deliver(watcher.onChange, {
					key: row.key,
					value: row.value === null ? undefined : JSON.parse(row.value),
					revision: row.revision
				});
			}
			if (rows.length < CATCH_UP_BATCH) return;
		}
	}

	private stopPolling(): void {
		clearInterval(this.poller);
		this.poller = undefined;
	}
}

/** `path` is a file (created with its folder if missing) or ":memory:". */
export function openSqliteDirectory(path: string): SqliteDirectoryStore {
	if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
	const db = new DatabaseSync(path);
	// WAL lets another process read while this one writes; the busy timeout absorbs its short write locks.
	db.exec("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000;");
	return new SqliteDirectoryStore(db);
}

/** `undefined` is how a change says "deleted", so it cannot be a value. */
function encode(value: unknown): string {
	const json = value === undefined ? undefined : JSON.stringify(value);
	if (json === undefined) throw new TypeError("a directory value must be JSON-serialisable");
	return json;
}

function mismatch(key: string, expected: number, current: EntryRow | undefined): DirectoryError {
	const actual = current ? `revision ${current.revision}` : "absent";
	return new DirectoryError("REVISION_MISMATCH", `directory key "${key}" is ${actual}, not at revision ${expected}`);
}
