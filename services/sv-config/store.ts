import type { Kysely } from "kysely";
import { sql } from "kysely";
import type { SqlDialectName } from "../../regions/stores/sql.ts";

export type ConfigScope = "global" | "region";

export interface ConfigTables {
	config_entries: {
		scope: ConfigScope;
		key: string;
		version: number;
		value: string;
		author: string | null;
		created_at: number;
	};
}

export interface ConfigEntry {
	key: string;
	scope: ConfigScope;
	version: number;
	value: unknown;
	author: string | null;
	updatedAt: string;
}

type Row = ConfigTables["config_entries"];

function toEntry(row: Row): ConfigEntry {
	return {
		key: row.key,
		scope: row.scope,
		version: Number(row.version),
		value: JSON.parse(row.value),
		author: row.author,
		updatedAt: new Date(Number(row.created_at)).toISOString()
	};
}

/** sv-config's data access: the only code that touches `config_entries`. */
export class ConfigStore {
	private readonly db: Kysely<ConfigTables>;
	private readonly dialect: SqlDialectName;
	constructor(db: Kysely<ConfigTables>, dialect: SqlDialectName) {
		this.db = db;
		this.dialect = dialect;
	}

	async current(scope: ConfigScope, key: string): Promise<ConfigEntry | undefined> {
		const row = await this.db
			.selectFrom("config_entries")
			.selectAll()
			.where("scope", "=", scope)
			.where("key", "=", key)
			.orderBy("version", "desc")
			.limit(1)
			.executeTakeFirst();
		return row && toEntry(row);
	}

	async version(scope: ConfigScope, key: string, version: number): Promise<ConfigEntry | undefined> {
		const row = await this.db
			.selectFrom("config_entries")
			.selectAll()
			.where("scope", "=", scope)
			.where("key", "=", key)
			.where("version", "=", version)
			.executeTakeFirst();
		return row && toEntry(row);
	}

	/**
	 * Appends the next version. The read of the latest version and the insert share a
	 * transaction (rows locked on MySQL; SQLite serialises writers), and a writer that still
	 * loses a race (duplicate key or deadlock) tries again with the version after.
	 */
	async append(scope: ConfigScope, key: string, value: string, author: string | null): Promise<ConfigEntry> {
		for (let attempt = 1; ; attempt++) {
			try {
				return await this.db.transaction().execute(async trx => {
					let latest = trx.selectFrom("config_entries").select("version").where("scope", "=", scope).where("key", "=", key).orderBy("version", "desc").limit(1);
					if (this.dialect === "mysql") latest = latest.forUpdate();
					const current = await latest.executeTakeFirst();
					const row: Row = { scope, key, version: Number(current?.version ?? 0) + 1, value, author, created_at: Date.now() };
					await trx.insertInto("config_entries").values(row).execute();
					return toEntry(row);
				});
			} catch (err) {
				if (attempt >= 10 || !isWriteConflict(err)) throw err;
				await new Promise(r => setTimeout(r, Math.random() * 5 * attempt));
			}
		}
	}

	async history(scope: ConfigScope, key: string, limit: number): Promise<ConfigEntry[]> {
		const rows = await this.db
			.selectFrom("config_entries")
			.selectAll()
			.where("scope", "=", scope)
			.where("key", "=", key)
			.orderBy("version", "desc")
			.limit(limit)
			.execute();
		return rows.map(toEntry);
	}

	/** Current entries (latest version of each key), ordered by scope then key. */
	async list(prefix: string, offset: number, limit: number): Promise<{ items: ConfigEntry[]; total: number }> {
		const latest = this.db
			.selectFrom("config_entries")
			.select(["scope", "key"])
			.select(eb => eb.fn.max("version").as("version"))
			// "!" as the LIKE escape behaves the same in MySQL and SQLite (a backslash does not).
			.where(sql<boolean>`${sql.ref("key")} like ${`${prefix.replace(/[!%_]/g, "!$&")}%`} escape '!'`)
			.groupBy(["scope", "key"]);
		const [rows, count] = await Promise.all([
			this.db
				.selectFrom("config_entries as e")
				.innerJoin(latest.as("l"), join => join.onRef("e.scope", "=", "l.scope").onRef("e.key", "=", "l.key").onRef("e.version", "=", "l.version"))
				.selectAll("e")
				.orderBy("e.scope")
				.orderBy("e.key")
				.limit(limit)
				.offset(offset)
				.execute(),
			this.db
				.selectFrom(latest.as("l"))
				.select(eb => eb.fn.countAll().as("n"))
				.executeTakeFirst()
		]);
		return { items: rows.map(toEntry), total: Number(count?.n ?? 0) };
	}
}

function isWriteConflict(err: unknown): boolean {
	const e = err as { code?: string; message?: string };
	return e.code === "ER_DUP_ENTRY" || e.code === "ER_LOCK_DEADLOCK" || /UNIQUE constraint failed/.test(e.message ?? "");
}
