import type { Kysely, Migration } from "kysely";
import { Migrator } from "kysely";

export type Migrations = Record<string, Migration>;

/** Raised when a service's migration fails: start-up stops with this message. */
export class MigrationError extends Error {
	constructor(owner: string, migration: string, cause: unknown) {
		super(`migration ${owner}/${migration} failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
		this.name = "MigrationError";
	}
}

/**
 * Applies `owner`'s pending migrations in name order. Each owner (service) has its own
 * record table, so services deployed in different process groups never see each
 * other's migrations as missing. Concurrent starters are serialised by Kysely's lock table.
 */
export async function migrate(db: Kysely<any>, owner: string, migrations: Migrations): Promise<string[]> {
	const table = `migrations_${owner.replace(/[^A-Za-z0-9]/g, "_")}`;
	const migrator = new Migrator({
		db,
		provider: { getMigrations: async () => migrations },
		migrationTableName: table,
		migrationLockTableName: `${table}_lock`
	});
	const { error, results = [] } = await migrator.migrateToLatest();
	const failed = results.find(r => r.status === "Error");
	if (error || failed) throw new MigrationError(owner, failed?.migrationName ?? "(setup)", error);
	return results.filter(r => r.status === "Success").map(r => r.migrationName);
}
