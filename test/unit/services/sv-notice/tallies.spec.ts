import type { Kysely } from "kysely";
import { afterEach, describe, expect, it } from "vitest";
import { migrate } from "../../../../regions/stores/index.ts";
import type { SqlDialectName, SqlStore } from "../../../../regions/stores/sql.ts";
import { openSqlStore } from "../../../../regions/stores/sql.ts";
import { migrations } from "../../../../services/sv-notice/migrations.ts";
import type { TallyChange } from "../../../../services/sv-notice/tallies.ts";
import { changeUnread, recountTally, tallyUpsert, unreadOf } from "../../../../services/sv-notice/tallies.ts";

let store: SqlStore | undefined;
afterEach(async () => {
	await store?.close();
	store = undefined;
});

const notice = (user: string, seq: number, read: boolean, deleted = false) => ({
	user_id: user,
	seq,
	id: `${user}-${seq}`,
	category: "wallet",
	template: "transfer-received",
	locale: "en",
	title: "t",
	body_text: "b",
	body_html: "<p>b</p>",
	idempotency_key: `k${seq}`,
	created_at: 1,
	read_at: read ? 2 : null,
	deleted_at: deleted ? 3 : null
});

const talliesOf = async (db: Kysely<any>) =>
	(await db.selectFrom("notice_tallies").selectAll().orderBy("user_id").execute()).map(r => ({ ...r, last_seq: Number(r.last_seq), unread: Number(r.unread) }));

describe("sv-notice tallies", () => {
	it("are counted once from an inbox written before they existed", async () => {
		store = await openSqlStore("sqlite::memory:");
		const { "0004_tallies": tallies, ...before } = migrations;
		await migrate(store.db, "sv-notice", before);
		await store.db
			.insertInto("notice_inbox")
			.values([notice("ann", 1, false), notice("ann", 2, true), notice("ann", 3, false, true), notice("ann", 4, false), notice("bo", 1, true)])
			.execute();
		expect(await migrate(store.db, "sv-notice", { ...before, "0004_tallies": tallies! })).toEqual(["0004_tallies"]);
		expect(await talliesOf(store.db)).toEqual([
			{ user_id: "ann", last_seq: 4, unread: 2 },
			{ user_id: "bo", last_seq: 1, unread: 0 }
		]);
	});

	const addToTallies = async (db: Kysely<any>, dialect: SqlDialectName, changes: TallyChange[]) => {
		const upsert = tallyUpsert(db, dialect, changes);
		if (upsert) await db.executeQuery(upsert);
	};

	it("add sends' numbers and unread notices to what is there, never lower a last number, and count again from the inbox", async () => {
		store = await openSqlStore("sqlite::memory:");
		await migrate(store.db, "sv-notice", migrations);
		const db = store.db;
		await addToTallies(db, store.dialect, [{ userId: "ann", last: 3, unread: 3 }]);
		await addToTallies(db, store.dialect, [
			{ userId: "ann", last: 5, unread: 1 },
			{ userId: "bo", last: 1, unread: 1 }
		]);
		await changeUnread(db, "ann", -2);
		expect(await unreadOf(db, ["ann", "bo", "cy"])).toEqual(
			new Map([
				["ann", 2],
				["bo", 1]
			])
		);
		await addToTallies(db, store.dialect, [{ userId: "ann", last: 4, unread: 0 }]);
		expect((await talliesOf(db))[0]).toEqual({ user_id: "ann", last_seq: 5, unread: 2 });
		await db
			.insertInto("notice_inbox")
			.values([notice("ann", 7, false), notice("ann", 8, true)])
			.execute();
		await recountTally(db, "ann");
		expect((await talliesOf(db))[0]).toEqual({ user_id: "ann", last_seq: 8, unread: 1 });
	});
});
