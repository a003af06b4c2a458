import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { regionId, userId } from "../../kernel/fields.ts";
import type { AuditEvent, HeldAuditRecord } from "../../mixins/audit.mixin.ts";
import { AUDIT_CHANNEL, actorOf, audit, holdAuditRecord, sendHeldAuditRecord } from "../../mixins/audit.mixin.ts";
import type { ChannelDelivery } from "../../mixins/channels/declaration.ts";
import { OutboxRelay } from "../../mixins/channels/sql-outbox-relay.ts";
import type { DbVars } from "../../mixins/db.mixin.ts";
import { dbMixin } from "../../mixins/db.mixin.ts";
import type { BusinessMetrics } from "../../mixins/metrics.mixin.ts";
import { declareMetrics, metricsMixin } from "../../mixins/metrics.mixin.ts";
import type { MoveParticipantMethods } from "../../mixins/move-participant.mixin.ts";
import { moveParticipantMixin, movesThrough } from "../../mixins/move-participant.mixin.ts";
import type { HomeEntry } from "../../regions/directory/entries.ts";
import { USER_ID } from "../../regions/directory/entries.ts";
import { fromDirectoryFailure } from "../../regions/errors.ts";
import type { HomeMeta } from "../../regions/home-router.ts";
import { envInt } from "../../regions/runtime/env.ts";
import { regionRuntimeOf } from "../../regions/runtime/region-runtime.ts";
import { scopeOf, unscoped } from "../../regions/stores/scoped-db.ts";
import { alsoChanged } from "../../regions/user-changes.ts";
import { maxAmountFrom, parseAmount, parseSignedAmount } from "./amounts.ts";
import { Currencies } from "./currencies.ts";
import { RecipientNotFoundError, TransferNotFoundError, TransferToSelfError } from "./errors.ts";
import { amount, currency, cursor, DEFAULT_HOLD_SECONDS, entityId, expiresInSeconds, idempotencyKey, MAX_PAGE, memo, recipient } from "./fields.ts";
import { Holds } from "./holds.ts";
import { requestHash } from "./idempotency.ts";
import { Ledger } from "./ledger.ts";
import { migrations } from "./migrations.ts";
import { WalletMoves } from "./moves.ts";
import type { CreditMessage, SettleMessage } from "./outbox.ts";
import { AUDIT_DETAIL_BYTES, addToOutbox, auditRow, CREDIT_CHANNEL, NOTICE_CHANNEL, SETTLE_CHANNEL } from "./outbox.ts";
import type { TransferOutcome } from "./payments.ts";
import { adjust, Payments } from "./payments.ts";
import { reconcile } from "./reconciliation.ts";
import type { BatchedTransfer } from "./transfer-batches.ts";
import { TransferBatches } from "./transfer-batches.ts";
import type { TransferRow } from "./views.ts";
import { holdView, transferView } from "./views.ts";
import { entriesPage, walletView } from "./wallet-reads.ts";

interface Vars extends DbVars<any> {
	ledger: Ledger;
	payments: Payments;
	holds: Holds;
	batches: TransferBatches;
	moves: WalletMoves;
	relay: OutboxRelay;
	currencies: Currencies;
	maxAmount: bigint;
	sweeper: NodeJS.Timeout | undefined;
	businessMetrics: BusinessMetrics<typeof MONEY_METRICS>;
}

/** What the wallet counts beside its actions' RED metrics (mixins/metrics.mixin.ts). */
const MONEY_METRICS = declareMetrics({
	transfers: {
		name: "edgehome_money_transfers_total",
		type: "counter",
		help: "Transfers this node's payers made, by what their call answered: completed here, pending a credit in another region, or replayed under its key",
		labelNames: ["outcome"]
	}
});

type Methods = MoveParticipantMethods & {
	recipient(ctx: Context, to: string, payer: string): Promise<{ id: string; home: string }>;
	homeOf(userId: string): Promise<string>;
	homeEntry(userId: string): Promise<HomeEntry | undefined>;
	transferAlone(job: BatchedTransfer): Promise<TransferOutcome>;
	deliverCredit(msg: ChannelDelivery<CreditMessage>): Promise<void>;
	sweepHolds(): Promise<void>;
	auditWrite(ctx: Context, event: AuditEvent & { target: string }): Promise<void>;
};

const signedAmount = amount;
const creditMessage = {
	$$strict: true,
	userId,
	transferId: entityId,
	from: userId,
	fromRegion: regionId,
	amount: { type: "string", pattern: /^[1-9][0-9]{0,18}$/ },
	currency: { type: "string", pattern: /^[A-Z]{3}$/ },
	memo: { type: "string", max: 140, nullable: true },
	createdAt: { type: "number", integer: true, min: 0 }
} as const;

/**
 * A credit or an outcome waits for a region that is down: tried again at least every 5 s (so it
 * lands within seconds of the region's return), for about 14 hours before it becomes a dead
 * letter (ops replay it: `channels replay`; the transfer stays pending meanwhile). One held by a
 * node that died goes to another after 10 s, not the default 30 s.
 */
const PATIENT = { maxRetries: 10_000, maxBackoffMs: 5000, ackWaitMs: 10_000 } as const;

/** Transfer batches in progress at once on a node (each on its own connection), and most transfers in one. */
const BATCH_LANES = 4;
const BATCH_SIZE = 64;

/** A ledger write's statements mean nothing apart: they commit in one transaction (regions/home-router.ts). */
const atomicWrite = { param: "userId", atomic: true } as const;

/**
 * Wallets: a double-entry ledger in each user's home region (ledger.ts), transfers that are
 * idempotent by key and never make a user balance negative, two-phase holds, and transfers to
 * users of other regions through an outbox and the durable channels (payments.ts). Every write is
 * home-routed, so it runs on the node the Shard strategy gives the user, inside the fence's
 * batched transaction (regions/ownership/write-batch.ts): the group commit. A move participant.
 */
const svMoney: ServiceSchema<ServiceSettingSchema, Methods, Vars> = {
	name: "sv-money",
	mixins: [dbMixin(migrations), moveParticipantMixin(), metricsMixin({ business: MONEY_METRICS })],

	channels: {
		[CREDIT_CHANNEL]: {
			...PATIENT,
			maxInFlight: 32,
			handler(this: any, msg: ChannelDelivery<CreditMessage>) {
				return this.deliverCredit(msg);
			}
		},
		[SETTLE_CHANNEL]: {
			...PATIENT,
			maxInFlight: 32,
			async handler(this: any, msg: ChannelDelivery<SettleMessage>) {
				await msg.ctx.call("sv-money.settle", msg.payload).catch((err: { type?: string }) => {
					// The payer no longer exists: nobody is left to refund.
					if (err.type !== "USER_NOT_FOUND") throw err;
					this.logger.warn(`transfer ${msg.payload.transferId}: payer ${msg.payload.userId} is gone; outcome ${msg.payload.outcome} dropped`);
				});
			}
		}
	},

	actions: {
		transfer: {
			restricted: "money",
			// Committed in set-based batches that hold every payer's and payee's ownership row (transfer-batches.ts).
			home: { param: "userId", selfFenced: true },
			params: { $$strict: true, userId, to: recipient, amount, currency, memo, idempotencyKey },
			async handler(
				ctx: Context<{ userId: string; to: string; amount: unknown; currency: string; memo?: string; idempotencyKey: string }, { $home?: HomeMeta }>
			) {
				const p = ctx.params;
				const value = parseAmount(p.amount, this.maxAmount);
				this.currencies.get(p.currency);
				const hash = requestHash("transfer", [p.to, value.toString(), p.currency, p.memo ?? null]);
				const payee = await this.recipient(ctx, p.to, p.userId);
				const job = {
					req: {
						payer: p.userId,
						payee: payee.id,
						payeeHome: payee.home,
						amount: value,
						currency: p.currency,
						memo: p.memo ?? null,
						idempotencyKey: p.idempotencyKey,
						requestHash: hash
					},
					callerEpoch: ctx.meta.$home?.epoch
				};
				// Inside another write's transaction (which holds SQLite's one connection) a batch could not start: it joins that write.
				const done = scopeOf(this.db) ? await this.transferAlone(job) : await this.batches.submit(job);
				if (done.queued) this.relay.kick();
				this.businessMetrics.increment("transfers", { outcome: done.replayed ? "replayed" : done.row.status === "completed" ? "completed" : "pending" });
				// Credited here, in this write: the payee's cached reads go too.
				if (done.row.status === "completed") alsoChanged(ctx, payee.id);
				if (!done.replayed)
					await audit(this.broker, ctx, {
						actor: p.userId,
						action: "money.transfer",
						target: payee.id,
						outcome: "success",
						detail: { transferId: done.row.id, amount: value.toString(), currency: p.currency }
					});
				return { transfer: transferView(done.row), replayed: done.replayed };
			}
		},

		getTransfer: {
			home: { param: "userId", readonly: true },
			params: { $$strict: true, userId, id: entityId },
			async handler(ctx: Context<{ userId: string; id: string }>) {
				const row = (await this.db
					.selectFrom("money_transfers")
					.selectAll()
					.select(this.ledger.text("amount").as("amount"))
					.where("owner_id", "=", ctx.params.userId)
					.where("id", "=", ctx.params.id)
					.executeTakeFirst()) as TransferRow | undefined;
				if (!row) throw new TransferNotFoundError(ctx.params.id);
				return transferView(row);
			}
		},

		wallet: {
			home: { param: "userId", readonly: true },
			params: { $$strict: true, userId },
			handler(ctx: Context<{ userId: string }>) {
				return walletView(this.ledger, ctx.params.userId);
			}
		},

		entries: {
			home: { param: "userId", readonly: true },
			params: {
				$$strict: true,
				userId,
				currency: { ...currency, optional: true },
				cursor,
				limit: { type: "number", integer: true, min: 1, max: MAX_PAGE, default: 20, convert: true }
			},
			handler(ctx: Context<{ userId: string; currency?: string; cursor?: string; limit: number }>) {
				const { userId: user, currency: code, cursor, limit } = ctx.params;
				return entriesPage(this.ledger, user, { currency: code, cursor, limit });
			}
		},

		placeHold: {
			restricted: "money",
			home: atomicWrite,
			params: {
				$$strict: true,
				userId,
				to: recipient,
				amount,
				currency,
				memo,
				expiresInSeconds: { ...expiresInSeconds, default: DEFAULT_HOLD_SECONDS, convert: true },
				idempotencyKey
			},
			async handler(
				ctx: Context<{ userId: string; to: string; amount: unknown; currency: string; memo?: string; expiresInSeconds: number; idempotencyKey: string }>
			) {
				const p = ctx.params;
				const value = parseAmount(p.amount, this.maxAmount);
				this.currencies.get(p.currency);
				const hash = requestHash("hold", [p.to, value.toString(), p.currency, p.memo ?? null, String(p.expiresInSeconds)]);
				const payee = await this.recipient(ctx, p.to, p.userId);
				const placed = await this.holds.place({
					payer: p.userId,
					payee: payee.id,
					amount: value,
					currency: p.currency,
					memo: p.memo ?? null,
					lifetimeS: p.expiresInSeconds,
					idempotencyKey: p.idempotencyKey,
					requestHash: hash
				});
				return { hold: holdView(placed.row), replayed: placed.replayed };
			}
		},

		getHold: {
			home: { param: "userId", readonly: true },
			params: { $$strict: true, userId, id: entityId },
			async handler(ctx: Context<{ userId: string; id: string }>) {
				return holdView(await this.holds.get(ctx.params.userId, ctx.params.id));
			}
		},

		captureHold: {
			restricted: "money",
			home: atomicWrite,
			params: { $$strict: true, userId, id: entityId },
			async handler(ctx: Context<{ userId: string; id: string }>) {
				const row = await this.holds.capture(ctx.params.userId, ctx.params.id, payee => this.homeOf(payee));
				this.relay.kick();
				alsoChanged(ctx, row.to_id);
				return holdView(row);
			}
		},

		voidHold: {
			restricted: "money",
			home: atomicWrite,
			params: { $$strict: true, userId, id: entityId },
			async handler(ctx: Context<{ userId: string; id: string }>) {
				return holdView(await this.holds.void(ctx.params.userId, ctx.params.id));
			}
		},

		expireHold: {
			restricted: "money",
			home: atomicWrite,
			params: { $$strict: true, userId, id: entityId },
			async handler(ctx: Context<{ userId: string; id: string }>) {
				return { expired: await this.holds.expire(ctx.params.userId, ctx.params.id) };
			}
		},

		adjust: {
			restricted: "money",
			home: atomicWrite,
			params: { $$strict: true, userId, amount: signedAmount, currency, reason: { type: "string", min: 1, max: 200 }, operator: userId },
			async handler(ctx: Context<{ userId: string; amount: unknown; currency: string; reason: string; operator: string }>) {
				const p = ctx.params;
				const value = parseSignedAmount(p.amount, this.maxAmount);
				this.currencies.get(p.currency);
				if (!(await this.homeEntry(p.userId))) throw new RecipientNotFoundError(p.userId);
				const row = await adjust(this.ledger, regionRuntimeOf(this.broker).region.id, {
					userId: p.userId,
					amount: value,
					currency: p.currency,
					reason: p.reason,
					operator: p.operator
				});
				await this.auditWrite(ctx, {
					actor: p.operator,
					action: "money.adjust",
					target: p.userId,
					outcome: "success",
					detail: { amount: value.toString(), currency: p.currency, reason: p.reason, transferId: row.id }
				});
				return transferView(row);
			}
		},

		freeze: {
			restricted: "money",
			home: atomicWrite,
			params: { $$strict: true, userId, reason: { type: "string", max: 200, optional: true } },
			async handler(ctx: Context<{ userId: string; reason?: string }>) {
				await this.ledger.setFrozen(ctx.params.userId, true, ctx.params.reason ?? null);
				const detail = ctx.params.reason ? { reason: ctx.params.reason } : {};
				await this.auditWrite(ctx, { actor: actorOf(ctx, "sv-money"), action: "money.freeze", target: ctx.params.userId, outcome: "success", detail });
				return { userId: ctx.params.userId, frozen: true };
			}
		},

		unfreeze: {
			restricted: "money",
			home: atomicWrite,
			params: { $$strict: true, userId },
			async handler(ctx: Context<{ userId: string }>) {
				await this.ledger.setFrozen(ctx.params.userId, false, null);
				await this.auditWrite(ctx, { actor: actorOf(ctx, "sv-money"), action: "money.unfreeze", target: ctx.params.userId, outcome: "success" });
				return { userId: ctx.params.userId, frozen: false };
			}
		},

		reconcile: {
			home: { region: "region" },
			params: { $$strict: true, region: regionId },
			handler(ctx: Context<{ region: string }>) {
				return reconcile(this.ledger, ctx.params.region);
			}
		},

		applyCredit: {
			// Credits a transfer another region debited: only sv-money's own consumers may ask.
			restricted: "money",
			visibility: "public",
			home: atomicWrite,
			params: creditMessage,
			async handler(ctx: Context<CreditMessage>) {
				const refusal = this.currencies.has(ctx.params.currency) ? null : "CURRENCY_NOT_SUPPORTED";
				const outcome = await this.payments.applyCredit(ctx.params, refusal);
				if (outcome !== "repeat") this.relay.kick();
				return { outcome };
			}
		},

		settle: {
			restricted: "money",
			visibility: "public",
			home: atomicWrite,
			params: {
				$$strict: true,
				userId,
				transferId: entityId,
				outcome: { type: "enum", values: ["completed", "failed"] },
				reason: { type: "string", max: 64, nullable: true }
			},
			async handler(ctx: Context<SettleMessage>) {
				return { settled: await this.payments.settle(ctx.params) };
			}
		}
	},

	methods: {
		/** An audit record of the write being made, in its transaction's outbox: no record of a write rolled back, none lost to a bus that is down. */
		async auditWrite(ctx, event) {
			const here = regionRuntimeOf(this.broker).region.id;
			await addToOutbox(this.ledger.db, auditRow(event.target, here, holdAuditRecord(ctx, event, AUDIT_DETAIL_BYTES)));
			this.relay.kick();
		},

		/** The payee a request names (a user id, else a username) and its home; RECIPIENT_NOT_FOUND or TRANSFER_TO_SELF before anything is written. */
		async recipient(ctx: Context, to: string, payer: string) {
			let id: string | undefined;
			if (USER_ID.test(to) && (await this.homeEntry(to))) id = to;
			else {
				const found = await ctx.call<{ userId: string }, unknown>("sv-region.resolve", { kind: "username", value: to }).catch((err: { type?: string }) => {
					if (err.type === "USER_NOT_FOUND" || err.type === "VALIDATION_ERROR") return undefined;
					throw err;
				});
				id = found?.userId;
			}
			if (id === payer) throw new TransferToSelfError();
			const home = id && (await this.homeEntry(id));
			if (!id || !home) throw new RecipientNotFoundError(to);
			return { id, home: home.region };
		},

		/**
		 * Where the directory says a user lives: this node's view, and on a miss the origin (a user
		 * registered a moment ago may not have reached this region's mirror yet). A directory that
		 * cannot answer is DIRECTORY_UNAVAILABLE (503), as for any routed call.
		 */
		async homeEntry(user: string) {
			const directory = regionRuntimeOf(this.broker).directory;
			return directory
				.home(user)
				.then(found => found ?? directory.refresh(user))
				.catch(fromDirectoryFailure);
		},

		async homeOf(user: string) {
			const home = await this.homeEntry(user);
			if (!home) throw new RecipientNotFoundError(user);
			return home.region;
		},

		/** One transfer through the fence: for a payer whose ownership row a batch could not decide on (absent, moving). */
		transferAlone(job: BatchedTransfer) {
			const { req } = job;
			return regionRuntimeOf(this.broker).fence.run(
				req.payer,
				job.callerEpoch,
				async () => {
					const earlier = await this.payments.replay(req.payer, req.idempotencyKey, req.requestHash);
					if (earlier) return { row: earlier, replayed: true, queued: false };
					return this.payments.transfer(req);
				},
				true
			);
		},

		/** A credit for a payee: applied at the payee's home, wherever that is now; a payee that no longer exists is refused back to the payer. */
		async deliverCredit(msg: ChannelDelivery<CreditMessage>) {
			try {
				await msg.ctx.call("sv-money.applyCredit", msg.payload);
			} catch (err) {
				if ((err as { type?: string }).type !== "USER_NOT_FOUND") throw err;
				const p = msg.payload;
				const here = regionRuntimeOf(this.broker).region.id;
				const settle: SettleMessage = { userId: p.from, transferId: p.transferId, outcome: "failed", reason: "RECIPIENT_NOT_FOUND" };
				await this.broker.sendToChannel(SETTLE_CHANNEL, settle, { key: p.from, ...(p.fromRegion === here ? {} : { region: p.fromRegion }) });
			}
		},

		/** Expired holds of users homed here give their funds back; each through the user's own write. */
		async sweepHolds() {
			const due = await unscoped(this.db)
				.selectFrom("money_holds")
				.select(["owner_id", "id"])
				.where("status", "=", "pending")
				.where("expires_at", "<=", Date.now())
				.limit(100)
				.execute();
			for (const hold of due)
				await this.broker.call("sv-money.expireHold", { userId: hold.owner_id, id: hold.id }).catch((err: Error) => {
					this.logger.debug(`hold ${hold.id} not expired yet: ${err.message}`);
				});
		},

		...movesThrough(service => service.moves)
	},

	created() {
		this.currencies = new Currencies(process.env.EDGEHOME_MONEY_CURRENCIES);
		this.maxAmount = maxAmountFrom(process.env.EDGEHOME_MONEY_MAX_AMOUNT);
	},

	async started() {
		const runtime = regionRuntimeOf(this.broker);
		const here = runtime.region.id;
		this.ledger = new Ledger(this.db, this.dialect);
		this.payments = new Payments({ ledger: this.ledger, region: here, alsoFenced: (user, fn) => runtime.fence.run(user, undefined, fn) });
		this.holds = new Holds(this.ledger, this.payments);
		this.batches = new TransferBatches({
			region: here,
			db: unscoped(this.db),
			dialect: this.dialect,
			records: runtime.ownership,
			alone: job => this.transferAlone(job),
			lanes: this.dialect === "sqlite" ? 1 : BATCH_LANES,
			maxSize: BATCH_SIZE
		});
		this.moves = new WalletMoves(this.ledger);
		this.relay = new OutboxRelay({
			db: unscoped(this.db),
			table: "money_outbox",
			dialect: this.dialect,
			logger: this.logger,
			broker: this.broker,
			pollMs: envInt(process.env, "EDGEHOME_MONEY_RELAY_MS", 500, 10, 60_000),
			send: async m => {
				// A record written before its user moved goes to the log of the region where the act happened.
				const where = m.region === here ? {} : { region: m.region };
				const sent =
					m.channel === AUDIT_CHANNEL
						? sendHeldAuditRecord(this.broker, m.payload as HeldAuditRecord, where)
						: this.broker.sendToChannel(m.channel, m.payload, { key: m.key, ...where });
				await sent.catch((err: { type?: string }) => {
					// A region that runs no sv-notice sends no notices, one without sv-log keeps no audit log; the wallet's own channels are always declared.
					if ((m.channel === NOTICE_CHANNEL || m.channel === AUDIT_CHANNEL) && err.type === "UNKNOWN_CHANNEL") return;
					throw err;
				});
			}
		});
		this.relay.start();
		const sweepMs = envInt(process.env, "EDGEHOME_MONEY_HOLD_SWEEP_MS", 5000, 100, 3_600_000);
		const sweep = () => {
			this.sweeper = setTimeout(
				() =>
					void this.sweepHolds()
						.catch(err => this.logger.warn(`hold sweep failed: ${(err as Error).message}`))
						.finally(() => this.sweeper && sweep()),
				sweepMs
			);
		};
		sweep();
	},

	async stopped() {
		clearTimeout(this.sweeper);
		this.sweeper = undefined;
		await this.relay?.stop();
	}
};

export default svMoney;
