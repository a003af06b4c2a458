import { sql } from "kysely";
import type { ServiceSchema } from "moleculer";
import { afterEach, describe, expect, it } from "vitest";
import { dbMixin } from "../../../mixins/db.mixin.ts";
import { MigrationError, migrate } from "../../../regions/stores/index.ts";
import type { SqlStore } from "../../../regions/stores/sql.ts";
import { openSqlStore } from "../../../regions/stores/sql.ts";
import { startServices } from "../../harness/embedded.ts";

let store: SqlStore | undefined;
afterEach(async () => {
	await store?.close();
	store = undefined;
});

const notes = {
	"0001_notes": {
		async up(db: any) {
			await db.schema
				.createTable("notes")
				.addColumn("id", "integer", (c: any) => c.primaryKey())
				.execute();
		}
	},
	"0002_notes_text": {
		async up(db: any) {
			await db.schema.alterTable("notes").addColumn("text", "varchar(200)").execute();
		}
	}
};

describe("migrations", () => {
	it("apply in name order once, recorded per service, and are a no-op the second time", async () => {
		store = await openSqlStore("sqlite::memory:");
		expect(await migrate(store.db, "sv-notes", notes)).toEqual(["0001_notes", "0002_notes_text"]);
		expect(await migrate(store.db, "sv-notes", notes)).toEqual([]);
		const recorded = await store.db.selectFrom("migrations_sv_notes").select("name").orderBy("name").execute();
		expect(recorded.map(r => r.name)).toEqual(["0001_notes", "0002_notes_text"]);
		await store.db.insertInto("notes").values({ id: 1, text: "hi" }).execute();
	});

	it("keep each service's record apart, so one service never sees another's as missing", async () => {
		store = await openSqlStore("sqlite::memory:");
		await migrate(store.db, "sv-notes", notes);
		await expect(migrate(store.db, "sv-other", {})).resolves.toEqual([]);
	});

	it("stop at a failing migration with an error naming it, leaving later ones unapplied", async () => {
		store = await openSqlStore("sqlite::memory:");
		const broken = {
			...notes,
			"0003_broken": { up: async (db: any) => void (await sql`create table notes (id integer)`.execute(db)) },
			"0004_after": { up: (db: any) => db.schema.createTable("after").addColumn("id", "integer").execute() }
		};
		const err = await migrate(store.db, "sv-notes", broken).catch(e => e);
		expect(err).toBeInstanceOf(MigrationError);
		expect(err.message).toMatch(/^migration sv-notes\/0003_broken failed: .*already exists/);
		const recorded = await store.db.selectFrom("migrations_sv_notes").select("name").execute();
		expect(recorded.map(r => r.name).sort()).toEqual(["0001_notes", "0002_notes_text"]);
	});

	it("make a service with a failing migration fail start-up", async () => {
		const schema: ServiceSchema = {
			name: "sv-broken",
			mixins: [dbMixin({ "0001_bad": { up: async (db: any) => void (await sql`create tabel oops`.execute(db)) } })]
		};
		await expect(startServices([schema])).rejects.toThrow(/migration sv-broken\/0001_bad failed/);
	});
});
