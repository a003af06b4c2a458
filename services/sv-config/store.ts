import { sql } from "kysely";
import type { Kysely } from "kysely";

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
	constructor(db: Kysely<ConfigTables>) {
		this.db = db;
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
	 * Appends the next version. Two writers racing for the same version collide on the
	 * primary key; the loser re-reads and tries the version after.
	 */
	async append(scope: ConfigScope, key: string, value: string, author: string | null): Promise<ConfigEntry> {
		for (let attempt = 0; ; attempt++) {
			const latest = await this.db
				.selectFrom("config_entries")
				.select(eb => eb.fn.max("version").as("v"))
				.where("scope", "=", scope)
				.where("key", "=", key)
				.executeTakeFirst();
			const row: Row = {
				scope,
				key,
				version: Number(latest?.v ?? 0) + 1,
				value,
				author,
				created_at: Date.now()
			};
			try {
				await this.db.insertInto("config_entries").values(row).execute();
				return toEntry(row);
			} catch (err) {
				if (attempt >= 4 || !isDuplicateKey(err)) throw err;
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
				.innerJoin(latest.as("l"), join =>
					join.onRef("e.scope", "=", "l.scope").onRef("e.key", "=", "l.key").onRef("e.version", "=", "l.version")
				)
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

function isDuplicateKey(err: unknown): boolean {
	const e = err as { code?: string; errcode?: number; message?: string };
	return e.code === "ER_DUP_ENTRY" || /UNIQUE constraint failed|PRIMARY KEY/i.test(e.message ?? "");
}
