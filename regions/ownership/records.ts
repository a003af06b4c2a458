import type { CompiledQuery, Kysely, Transaction } from "kysely";
import { sql } from "kysely";
import type { Migrations, SqlStore } from "../stores/index.ts";

/**
 * A region's own record of the users it owns, in the region's own database beside their rows:
 * the authority a write commits against (see fence.ts). The directory and its mirrors say where
 * to route; this table says whether a write may commit here.
 * - `active`: this region is the home at `epoch`;
 * - `moving`: frozen by move `moveId` out of here: no write commits, the rows are final;
 * - `incoming`: move `moveId` is copying the user in; only its imports commit;
 * - `gone`: not the home since `epoch`; only move `moveId`'s deletes of leftovers commit.
 */
export type OwnershipState = "active" | "moving" | "incoming" | "gone";

export interface Ownership {
	epoch: number;
	state: OwnershipState;
	/** The move that set `moving`, `incoming` or `gone`; null for `active`. */
	moveId: string | null;
	/** Bumped by every change: a change decided on a read commits only if nothing changed since. */
	version: number;
}

export type OwnershipChange = Pick<Ownership, "epoch" | "state" | "moveId">;

export const OWNERSHIP_TABLE = "edgehome_ownership";

export const OWNERSHIP_MIGRATIONS: Migrations = {
	"0001_ownership": {
		async up(db) {
			await db.schema
				.createTable(OWNERSHIP_TABLE)
				.addColumn("user_id", "varchar(26)", c => c.primaryKey())
				.addColumn("epoch", "bigint", c => c.notNull())
				.addColumn("state", "varchar(8)", c => c.notNull())
				.addColumn("move_id", "varchar(36)")
				.addColumn("version", "bigint", c => c.notNull())
				.addColumn("updated_at", "bigint", c => c.notNull())
				.execute();
		}
	}
};

interface Row {
	epoch: number | string;
	state: OwnershipState;
	move_id: string | null;
	version: number | string;
}

export type Db = Kysely<any> | Transaction<any>;

const ownership = (row: Row): Ownership => ({ epoch: Number(row.epoch), state: row.state, moveId: row.move_id, version: Number(row.version) });

type ManyRow = Row & { user_id: string };

/** The rows of `readManyQuery`, by user. */
export const ownershipsOf = (rows: readonly unknown[]): Map<string, Ownership> => new Map((rows as ManyRow[]).map(row => [row.user_id, ownership(row)]));

/** Reads and changes ownership rows inside a caller's transaction. */
export class OwnershipRecords {
	readonly store: SqlStore;

	constructor(store: SqlStore) {
		this.store = store;
	}

	/**
	 * The user's row. `lock`: "share" holds it against a freeze until the transaction ends (what a
	 * fenced write does), "update" waits for every such write and then excludes them (a freeze).
	 * SQLite serialises transactions on its one connection, so it needs no lock clause.
	 */
	async read(db: Db, userId: string, lock?: "share" | "update"): Promise<Ownership | undefined> {
		const clause = this.store.dialect === "mysql" && lock ? sql.raw(lock === "share" ? " lock in share mode" : " for update") : sql.raw("");
		const { rows } = await sql<Row>`select epoch, state, move_id, version from ${sql.table(OWNERSHIP_TABLE)} where user_id = ${userId}${clause}`.execute(db);
		const row = rows[0];
		return row && ownership(row);
	}

	/** The rows of several users in one statement (a batch of fenced writes), locked as `read` does. */
	async readMany(db: Db, userIds: readonly string[], lock?: "share"): Promise<Map<string, Ownership>> {
		return ownershipsOf((await db.executeQuery(this.readManyQuery(db, userIds, lock))).rows);
	}

	/** `readMany` as a statement to send with others (grouped-transaction.ts); `ownershipsOf` reads its rows. */
	readManyQuery(db: Db, userIds: readonly string[], lock?: "share"): CompiledQuery<ManyRow> {
		const clause = this.store.dialect === "mysql" && lock ? sql.raw(" lock in share mode") : sql.raw("");
		return sql<ManyRow>`select user_id, epoch, state, move_id, version from ${sql.table(OWNERSHIP_TABLE)} where user_id in (${sql.join(userIds)})${clause}`.compile(
			db
		);
	}

	/** Writes the row: created if absent, else only if still at `version`. False when someone changed it first. */
	async write(db: Db, userId: string, next: OwnershipChange, current: Ownership | undefined): Promise<boolean> {
		const now = Date.now();
		if (!current) {
			const insert = db
				.insertInto(OWNERSHIP_TABLE)
				.values({ user_id: userId, epoch: next.epoch, state: next.state, move_id: next.moveId, version: 1, updated_at: now });
			const res = await (this.store.dialect === "mysql" ? insert.ignore() : insert.onConflict(oc => oc.doNothing())).executeTakeFirst();
			return Number(res.numInsertedOrUpdatedRows ?? 0) === 1;
		}
		const res = await db
			.updateTable(OWNERSHIP_TABLE)
			.set({ epoch: next.epoch, state: next.state, move_id: next.moveId, version: current.version + 1, updated_at: now })
			.where("user_id", "=", userId)
			.where("version", "=", current.version)
			.executeTakeFirst();
		return Number(res.numUpdatedRows) === 1;
	}
}
