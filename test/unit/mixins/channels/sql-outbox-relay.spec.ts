import { Kysely } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OutboxRelay } from "../../../../mixins/channels/sql-outbox-relay.ts";
import { nodeSqliteDialect } from "../../../../regions/stores/sqlite-dialect.ts";
import { within } from "../../../harness/waiting.ts";

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
		.addColumn("created_at", "bigint", c => c.notNull().defaultTo(0))
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

	it("reports the age of its oldest message while sends fail, and 0 once it is sent", async () => {
		await db.deleteFrom("outbox").execute();
		const ages: number[] = [];
		const series = new Set<string>();
		const broker = {
			isMetricsEnabled: () => true,
			metrics: {
				set(name: string, value: number, labels: unknown) {
					series.add(`${name} ${JSON.stringify(labels)}`);
					ages.push(value);
				}
			}
		} as never;
		let failing = true;
		const relay = new OutboxRelay({
			db,
			table: "outbox",
			dialect: "sqlite",
			logger: silent,
			pollMs: 20,
			broker,
			send: async () => {
				if (failing) throw new Error("the bus is down");
			}
		});
		await db
			.insertInto("outbox")
			.values({ channel: "c", msg_key: "k", region: "r", payload: "{}", created_at: Date.now() - 5000 })
			.execute();
		relay.start();
		await within(() => ages.some(a => a >= 6), 5000);
		failing = false;
		await within(() => ages.at(-1) === 0, 5000);
		await relay.stop();
		expect(await db.selectFrom("outbox").selectAll().execute()).toEqual([]);
		expect([...series]).toEqual(['edgehome_outbox_oldest_age_seconds {"outbox":"outbox"}']);
	});
});
