import { Kysely } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OutboxRelay } from "../../../../mixins/channels/sql-outbox-relay.ts";
import { nodeSqliteDialect } from "../../../../regions/stores/sqlite-dialect.ts";

/** The SQL outbox relay on SQLite: what it sends, and when. */
let db: Kysely<any>;

beforeAll(async () => {
	db = new Kysely<any>({ dialect: nodeSqliteDialect(":memory:") });
	await db.schema
		.createTable("outbox")
		.addColumn("id", "integer", c => c.primaryKey().autoIncrement())
		.addColumn("channel", "varchar(64)", c => c.notNull())
		.addColumn("msg_key", "varchar(64)", c => c.notNull())
		.addColumn("region", "varchar(32)", c => c.notNull())
		.addColumn("payload", "text", c => c.notNull())
		.addColumn("claimed_until", "bigint", c => c.notNull().defaultTo(0))
		.execute();
});

afterAll(() => db?.destroy());

const silent = { warn() {}, info() {}, debug() {}, error() {} } as never;

describe("the SQL outbox relay", () => {
	it("sends while writes keep kicking it faster than its kick delay, not only once they stop", async () => {
		const sentAt: number[] = [];
		const relay = new OutboxRelay({
			db,
			table: "outbox",
			dialect: "sqlite",
			logger: silent,
			pollMs: 60_000,
			send: async () => {
				sentAt.push(Date.now());
			}
		});
		relay.start();
		const started = Date.now();
		for (let i = 0; i < 40; i++) {
			await db
				.insertInto("outbox")
				.values({ channel: "c", msg_key: "k", region: "r", payload: JSON.stringify({ i }) })
				.execute();
			relay.kick();
			await new Promise(r => setTimeout(r, 10));
		}
		const writing = Date.now() - started;
		await relay.stop();
		expect(sentAt.length).toBeGreaterThan(0);
		// The first message went out while the writes were still coming, within a few kick delays.
		expect(sentAt[0]! - started).toBeLessThan(Math.min(writing, 200));
		expect(await db.selectFrom("outbox").selectAll().execute()).toHaveLength(40 - sentAt.length);
	});
});
