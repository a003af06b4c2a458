import FastestValidatorModule from "fastest-validator";
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { Errors } from "moleculer";
import { regionId, userId } from "../../kernel/fields.ts";
import type { AuditMessage } from "../../mixins/audit.mixin.ts";
import { AUDIT_CHANNEL, auditKeys } from "../../mixins/audit.mixin.ts";
import type { ChannelDelivery } from "../../mixins/channels/declaration.ts";
import { metricsMixin } from "../../mixins/metrics.mixin.ts";
import { envChoice, envInt, envString } from "../../regions/runtime/env.ts";
import { regionRuntimeOf } from "../../regions/runtime/region-runtime.ts";
import { migrate } from "../../regions/stores/index.ts";
import { unscoped } from "../../regions/stores/scoped-db.ts";
import type { CheckpointKeys, Verification } from "./chain.ts";
import { verifyChain } from "./chain.ts";
import { AuditRangeInvalidError, AuditStoreConfigError } from "./errors.ts";
import type { FilterParams } from "./fields.ts";
import { ACTION, FILTER_PARAMS, MAX_PAGE, optionalRegion } from "./fields.ts";
import type { Entry } from "./ingester.ts";
import { Ingester } from "./ingester.ts";
import { migrations } from "./migrations.ts";
import { MongoLogStore } from "./mongo-store.ts";
import type { LogRecord, RecordView } from "./record.ts";
import { byListingOrder, cursorOf, parseCursor, recordView } from "./record.ts";
import { redactText, redactValue } from "./redaction.ts";
import type { Retained } from "./retention.ts";
import { applyRetention } from "./retention.ts";
import { SqlLogStore } from "./sql-store.ts";
import type { LogFilter, LogStore } from "./store.ts";

/** What a user's own security log lists: sign-ins, sign-outs, and sessions ended for them. */
export const ACTIVITY_ACTIONS = ["auth.login", "auth.logout", "auth.session-ended", "auth.refresh-reused"] as const;

export interface LogSettings {
	store: "sql" | "mongodb";
	mongoUrl: string;
	batchSize: number;
	flushMs: number;
	retentionMs: number;
	sweepMs: number;
	ttlGraceMs: number;
	maxSkewMs: number;
	maxDetailBytes: number;
	verifyPage: number;
	fanOutTimeoutMs: number;
}

/** A page of one region, or of every region that answered. */
export interface Page {
	items: RecordView[];
	nextCursor: string | null;
	unavailable: string[];
}

interface Vars {
	settings: LogSettings;
	store: LogStore;
	ingester: Ingester;
	keys: CheckpointKeys;
	sweepTimer?: NodeJS.Timeout;
	sweeping?: Promise<unknown>;
}

interface Methods {
	settingsFromEnv(): LogSettings;
	openStore(): Promise<LogStore>;
	ingest(msg: ChannelDelivery<AuditMessage>): Promise<void>;
	filterOf(p: FilterParams): LogFilter;
	page(region: string, filter: LogFilter, limit: number): Promise<Page>;
	sweep(): Promise<Retained>;
}

const FastestValidator = FastestValidatorModule as unknown as typeof FastestValidatorModule.default;

/** A record as producers send it (mixins/audit.mixin.ts); anything else is refused before it reaches the chain. */
const checkRecord = new FastestValidator().compile({
	$$strict: true,
	at: { type: "number", integer: true, positive: true },
	actor: { type: "string", min: 1, max: 64 },
	action: { type: "string", max: 64, pattern: ACTION },
	target: { type: "string", min: 1, max: 128, optional: true },
	outcome: { type: "enum", values: ["success", "failure", "refused"] },
	detail: { type: "object", optional: true },
	ipHash: { type: "string", length: 64, pattern: /^[0-9a-f]{64}$/, optional: true }
}) as (payload: unknown) => true | unknown[];

const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** ms since the epoch, NaN for a day the calendar does not have (Date.parse takes 2025-02-30 as March 2nd). */
function toMs(instant: string): number {
	const [y, m, d] = instant.slice(0, 10).split("-").map(Number) as [number, number, number];
	if (m < 1 || m > 12 || d < 1 || d > new Date(Date.UTC(y, m, 0)).getUTCDate()) return Number.NaN;
	return Date.parse(/T/.test(instant) ? instant : `${instant}T00:00:00Z`);
}

/** The retention of `region`: EDGEHOME_LOG_RETENTION_S_<REGION> (e.g. `_EU_CENTRAL`), else EDGEHOME_LOG_RETENTION_S. */
function retentionOf(region: string, env = process.env): number {
	const all = envInt(env, "EDGEHOME_LOG_RETENTION_S", 365 * 86_400, 60, 100 * 365 * 86_400);
	return envInt(env, `EDGEHOME_LOG_RETENTION_S_${region.toUpperCase().replace(/-/g, "_")}`, all, 60, 100 * 365 * 86_400) * 1000;
}

/**
 * The audit log: every security- or money-relevant act of any service, taken from the durable
 * channel `audit.record` (producers use mixins/audit.mixin.ts), redacted, batched into a
 * hash chain per region (each record carries the hash of the one before), kept for the region's
 * retention period and queried across regions. Verification walks a chain and names its first
 * broken link; retention restarts the chain from a signed checkpoint.
 */
const svLog: ServiceSchema<ServiceSettingSchema, Methods, Vars> = {
	name: "sv-log",
	mixins: [metricsMixin()],

	channels: {
		[AUDIT_CHANNEL]: {
			// Batches fill from the messages in flight: the most a declaration allows.
			maxInFlight: 1000,
			maxRetries: 10_000,
			maxBackoffMs: 5000,
			handler(this: any, msg: ChannelDelivery<AuditMessage>) {
				return this.ingest(msg);
			}
		}
	},

	actions: {
		query: {
			home: { region: "region" },
			params: { $$strict: true, region: regionId, ...FILTER_PARAMS },
			/** One region's records, newest first. */
			handler(ctx: Context<FilterParams & { region: string }>): Promise<Page> {
				return this.page(ctx.params.region, this.filterOf(ctx.params), ctx.params.limit);
			}
		},

		search: {
			params: { $$strict: true, region: optionalRegion, ...FILTER_PARAMS },
			/**
			 * One region's records, or without `region` every reachable region's merged by time; the
			 * regions that did not answer are listed in `unavailable`, never silently left out.
			 */
			async handler(ctx: Context<FilterParams & { region?: string }>): Promise<Page> {
				const { region, ...filter } = ctx.params;
				this.filterOf(filter);
				if (region !== undefined) return ctx.call<Page, unknown>("sv-log.query", ctx.params);
				const regions = regionRuntimeOf(this.broker).regions.map(r => r.id);
				const answers = await Promise.allSettled(
					regions.map(r => ctx.call<Page, unknown>("sv-log.query", { ...filter, region: r }, { timeout: this.settings.fanOutTimeoutMs }))
				);
				const items: RecordView[] = [];
				const unavailable: string[] = [];
				let more = false;
				answers.forEach((a, i) => {
					if (a.status === "fulfilled") {
						items.push(...a.value.items);
						more ||= a.value.nextCursor !== null;
						return;
					}
					const err = a.reason as { code?: number; type?: string };
					// A refusal of the query itself is the caller's; anything else means the region did not answer.
					if (err instanceof Errors.ValidationError || err.type === "AUDIT_RANGE_INVALID") throw a.reason;
					unavailable.push(regions[i]!);
				});
				const position = (v: RecordView) => ({ at: Date.parse(v.at), region: v.region, seq: v.seq });
				items.sort((a, b) => byListingOrder(position(a), position(b)));
				const page = items.slice(0, filter.limit);
				const last = page[page.length - 1];
				return { items: page, nextCursor: last && (more || items.length > page.length) ? cursorOf(position(last)) : null, unavailable };
			}
		},

		verify: {
			home: { region: "region" },
			params: { $$strict: true, region: regionId },
			/** The region's chain from its checkpoint: where it first breaks, if it does. */
			handler(ctx: Context<{ region: string }>): Promise<Verification> {
				return verifyChain(this.store, ctx.params.region, this.keys, this.settings.verifyPage);
			}
		},

		retain: {
			home: { region: "region" },
			params: { $$strict: true, region: regionId },
			/** Runs the region's retention now (what the background job does every EDGEHOME_LOG_RETENTION_SWEEP_MS). */
			handler(): Promise<Retained> {
				return this.sweep();
			}
		},

		activity: {
			home: { param: "userId", readonly: true },
			params: {
				$$strict: true,
				userId,
				cursor: FILTER_PARAMS.cursor,
				limit: { ...FILTER_PARAMS.limit, max: 100, default: 20 }
			},
			/** The user's sign-ins (with their client and session), sign-outs and ended sessions, recorded in the home region. */
			async handler(ctx: Context<{ userId: string; cursor?: string; limit: number }>) {
				const here = regionRuntimeOf(this.broker).region.id;
				const filter: LogFilter = {
					user: ctx.params.userId,
					actions: ACTIVITY_ACTIONS,
					...(ctx.params.cursor ? { after: parseCursor(ctx.params.cursor) } : {})
				};
				const { items, nextCursor } = await this.page(here, filter, ctx.params.limit);
				return {
					items: items.map(r => ({
						at: r.at,
						action: r.action,
						outcome: r.outcome,
						client: typeof r.detail?.client === "string" ? r.detail.client : null,
						session: typeof r.detail?.sid === "string" ? r.detail.sid : null,
						ipHash: r.ipHash,
						region: r.region
					})),
					nextCursor
				};
			}
		}
	},

	methods: {
		settingsFromEnv() {
			const env = process.env;
			const runtime = regionRuntimeOf(this.broker);
			return {
				store: envChoice(env, "EDGEHOME_LOG_STORE", ["sql", "mongodb"] as const, "sql"),
				mongoUrl: envString(env, "EDGEHOME_LOG_MONGO_URL", runtime.region.endpoints.mongo),
				batchSize: envInt(env, "EDGEHOME_LOG_BATCH", 200, 1, 1000),
				flushMs: envInt(env, "EDGEHOME_LOG_FLUSH_MS", 20, 1, 5000),
				retentionMs: retentionOf(runtime.region.id, env),
				sweepMs: envInt(env, "EDGEHOME_LOG_RETENTION_SWEEP_MS", 3_600_000, 100, 86_400_000),
				ttlGraceMs: envInt(env, "EDGEHOME_LOG_TTL_GRACE_S", 86_400, 0, 365 * 86_400) * 1000,
				maxSkewMs: envInt(env, "EDGEHOME_LOG_MAX_SKEW_MS", 300_000, 0, 86_400_000),
				maxDetailBytes: envInt(env, "EDGEHOME_LOG_MAX_DETAIL_BYTES", 4096, 256, 65_536),
				verifyPage: envInt(env, "EDGEHOME_LOG_VERIFY_PAGE", 1000, 10, 100_000),
				fanOutTimeoutMs: envInt(env, "EDGEHOME_LOG_FANOUT_TIMEOUT_MS", 3000, 100, 60_000)
			};
		},

		async openStore() {
			if (this.settings.store === "mongodb") return MongoLogStore.open(this.settings.mongoUrl, { ttlGraceMs: this.settings.ttlGraceMs, timeoutMs: 5000 });
			const { sql } = regionRuntimeOf(this.broker).stores;
			const applied = await migrate(sql.db, this.name, migrations);
			if (applied.length) this.logger.info(`Applied migrations: ${applied.join(", ")}`);
			return new SqlLogStore(unscoped(sql.db));
		},

		/** A record from the channel: checked, redacted, then into the region's next batch; acknowledged once stored. */
		async ingest(msg) {
			const valid = checkRecord(msg.payload);
			const p = msg.payload;
			if (valid !== true || p.at > Date.now() + this.settings.maxSkewMs) {
				// A producer's mistake does not heal by waiting: said once, loudly, and not kept.
				const why = valid === true ? `its time is more than ${this.settings.maxSkewMs} ms ahead` : JSON.stringify(valid);
				return void this.logger.error(`audit record ${msg.id} refused: ${why}`);
			}
			let detail = p.detail === undefined ? null : (redactValue(p.detail) as Record<string, unknown>);
			const bytes = detail === null ? 0 : Buffer.byteLength(JSON.stringify(detail));
			if (bytes > this.settings.maxDetailBytes) detail = { truncated: true, bytes };
			const traceparent = (msg.ctx.meta as { traceparent?: unknown }).traceparent;
			const entry: Entry = {
				id: msg.id,
				at: p.at,
				actor: redactText(p.actor),
				action: p.action,
				target: p.target === undefined ? null : redactText(p.target),
				outcome: p.outcome,
				requestId: typeof msg.ctx.requestID === "string" ? msg.ctx.requestID.slice(0, 64) : null,
				traceId: typeof traceparent === "string" ? (TRACEPARENT.exec(traceparent)?.[1] ?? null) : null,
				ipHash: p.ipHash ?? null,
				detail
			};
			await this.ingester.add(entry);
		},

		filterOf(p) {
			const from = p.from === undefined ? undefined : toMs(p.from);
			const to = p.to === undefined ? undefined : toMs(p.to);
			const bad = [from, to].some(t => t !== undefined && Number.isNaN(t));
			if (bad)
				throw new Errors.ValidationError("Parameters validation error!", "VALIDATION_ERROR", [
					{ field: Number.isNaN(from) ? "from" : "to", message: "is not a real date" }
				]);
			if (from !== undefined && to !== undefined && from >= to) throw new AuditRangeInvalidError(p.from!, p.to!);
			return {
				...(p.actor === undefined ? {} : { actor: p.actor }),
				...(p.target === undefined ? {} : { target: p.target }),
				...(p.action === undefined ? {} : { action: p.action }),
				...(p.requestId === undefined ? {} : { requestId: p.requestId }),
				...(from === undefined ? {} : { from }),
				...(to === undefined ? {} : { to }),
				...(p.cursor === undefined ? {} : { after: parseCursor(p.cursor) })
			};
		},

		async page(region, filter, limit) {
			const rows: LogRecord[] = await this.store.query(region, filter, Math.min(limit, MAX_PAGE) + 1);
			const page = rows.slice(0, limit);
			const last = page[page.length - 1];
			return { items: page.map(recordView), nextCursor: last && rows.length > limit ? cursorOf(last) : null, unavailable: [] };
		},

		/** One run of the retention job; runs never overlap. */
		async sweep() {
			const region = regionRuntimeOf(this.broker).region.id;
			await this.sweeping;
			const run = applyRetention(this.store, region, Date.now() - this.settings.retentionMs, this.keys, { batch: 1000, pageSize: this.settings.verifyPage });
			this.sweeping = run.catch(() => undefined);
			return run;
		}
	},

	async started() {
		this.settings = this.settingsFromEnv();
		const keys = auditKeys("checkpoint");
		if (!keys) throw new AuditStoreConfigError("sv-log needs EDGEHOME_PII_KEYS: its checkpoints are signed with a key derived from them");
		this.keys = keys;
		const region = regionRuntimeOf(this.broker).region.id;
		this.store = await this.openStore();
		await this.store.prepare(region, this.settings.retentionMs);
		this.ingester = new Ingester(this.store, region, { batchSize: this.settings.batchSize, flushMs: this.settings.flushMs, maxConflicts: 20 }, this.logger);
		this.sweepTimer = setInterval(
			() =>
				void this.sweep().then(
					r => r.deleted && this.logger.info(`audit retention: ${r.deleted} records before ${r.checkpoint?.seq} deleted`),
					err => this.logger.error(`audit retention: ${(err as Error).message}`)
				),
			this.settings.sweepMs
		);
		this.sweepTimer.unref();
	},

	async stopped() {
		clearInterval(this.sweepTimer);
		await this.sweeping;
		await this.ingester?.drain();
		await this.store?.close();
	}
};

export default svLog;
