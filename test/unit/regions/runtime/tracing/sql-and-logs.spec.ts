import { sql } from "kysely";
import type { Context, ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ProcessTracing } from "../../../../../regions/runtime/tracing/process-sdk.ts";
import type { SqlStore } from "../../../../../regions/stores/sql.ts";
import { openSqlStore } from "../../../../../regions/stores/sql.ts";
import type { OtlpReceiver } from "../../../../harness/otlp-receiver.ts";
import { startOtlpReceiver } from "../../../../harness/otlp-receiver.ts";
import { within } from "../../../../harness/waiting.ts";
import { capturedLog, tracedBroker, traceTo } from "./traced-broker.ts";

let receiver: OtlpReceiver;
let tracing: ProcessTracing;
let broker: ServiceBroker;
let store: SqlStore;
const { log, lines } = capturedLog();

beforeAll(async () => {
	receiver = await startOtlpReceiver();
	store = await openSqlStore("sqlite::memory:");
	await store.db.schema
		.createTable("notes")
		.addColumn("id", "integer", c => c.primaryKey())
		.addColumn("text", "text")
		.execute();
	tracing = traceTo(receiver, "eu-central");
	broker = tracedBroker("eu-central", "eu-central-sql");
	broker.createService({
		name: "notes",
		actions: {
			add: {
				params: { text: "string" },
				async handler(ctx: Context<{ text: string }>) {
					log.info("adding a note");
					await store.db.insertInto("notes").values({ id: 7, text: ctx.params.text }).execute();
					// A literal written into the statement itself is not exported either.
					await store.db.selectFrom("notes").selectAll().where("text", "=", sql.lit("it's 'quoted'")).execute();
					await expect(store.db.insertInto("missing").values({ id: 1 }).execute()).rejects.toThrow();
					return 1;
				}
			}
		}
	});
	await broker.start();
});

afterAll(async () => {
	await broker?.stop();
	await tracing?.stop();
	await store?.close();
	await receiver?.stop();
});

describe("SQL queries and log lines in the trace of the handler that made them", () => {
	it("makes each query through the query builder a database client span of the action, with placeholders for every value", async () => {
		await broker.call("notes.add", { text: "ann@example.com wrote this" });
		await within(() => receiver.spans.length === 4, 5000);
		const action = receiver.spans.find(s => s.name === "notes/add")!;
		const queries = receiver.spans.filter(s => s.attributes["db.system.name"] === "sqlite");
		expect(queries.map(q => q.name)).toEqual(["INSERT notes", "SELECT notes", "INSERT missing"]);
		for (const q of queries) {
			expect(q).toMatchObject({ kind: "SPAN_KIND_CLIENT", traceId: action.traceId, parentSpanId: action.spanId });
			expect(q.startMs).toBeGreaterThanOrEqual(action.startMs);
			expect(q.endMs).toBeLessThanOrEqual(action.endMs);
		}
		expect(queries[0]!.attributes).toMatchObject({
			"db.operation.name": "INSERT",
			"db.collection.name": "notes",
			"db.query.text": 'insert into "notes" ("id", "text") values (?, ?)'
		});
		expect(queries[2]).toMatchObject({ status: { code: "STATUS_CODE_ERROR" }, attributes: { "error.type": "ERR_SQLITE_ERROR" } });
		expect(JSON.stringify(receiver.spans)).not.toMatch(/ann@example|quoted/);
	});

	it("writes the trace_id and span_id of the handler's span in its log lines, and none outside a handler", async () => {
		const action = receiver.spans.find(s => s.name === "notes/add")!;
		expect(lines.find(l => l.msg === "adding a note")).toMatchObject({
			trace_id: action.traceId,
			span_id: action.spanId,
			trace_flags: "01",
			requestID: expect.any(String)
		});
		log.info("not in a request");
		expect(lines.at(-1)).not.toHaveProperty("trace_id");
	});
});
