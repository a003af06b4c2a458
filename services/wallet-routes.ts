import * as answer from "../mixins/gateway/response-schemas.ts";
import type { GatewayContext, GatewayRoute } from "../mixins/gateway/routes.ts";
import { MONEY_ERRORS as refused, SERVICE_CALL_FAILURES } from "./gateway-errors.ts";
import { amount, currency, cursor, entityId, expiresInSeconds, MAX_PAGE, memo, recipient } from "./sv-money/fields.ts";

/**
 * The caller's own wallet over REST, on every gateway (as the /me routes are): balances, entries,
 * transfers and holds, each served by sv-money in the caller's home region for the user the token
 * names. Moving money needs an Idempotency-Key, so that a retried request is answered instead of
 * paid twice: 201 the first time, 200 with the same body for a replay.
 */

const read = { resource: "own-wallet", action: "read" };
const pay = { resource: "own-wallet", action: "pay" };

const PAYMENT_REFUSALS = [
	refused.insufficientFunds,
	refused.currencyNotSupported,
	refused.amountInvalid,
	refused.transferToSelf,
	refused.idempotencyKeyReused,
	refused.recipientNotFound,
	refused.walletFrozen
];

const wallet = (r: Omit<GatewayRoute, "tag" | "auth">): GatewayRoute => ({ ...r, tag: "wallet", auth: true });

/** 201 with the new resource's Location, or 200 for a replay: the key was seen with this very request, and its first answer stands. */
function createdOrReplayed<V>(ctx: GatewayContext, location: string, view: V, replayed: boolean): V {
	if (replayed) ctx.meta.$statusCode = 200;
	else ctx.meta.$location = location;
	return view;
}

const REPLAY = { 200: "A replay: this Idempotency-Key was used before with the same request, and this is its first answer." };

export const WALLET_ROUTES: readonly GatewayRoute[] = [
	wallet({
		method: "GET",
		path: "/api/v1/wallet",
		name: "myWallet",
		summary: "The caller's balances per currency: balance, available, held",
		permission: read,
		status: 200,
		response: answer.wallet,
		errors: SERVICE_CALL_FAILURES,
		params: { $$strict: true },
		handler(ctx) {
			const userId = ctx.locals.user.id;
			return this.cachedCall(ctx, "sv-money.wallet", { userId }, userId);
		}
	}),
	wallet({
		method: "GET",
		path: "/api/v1/wallet/entries",
		name: "myEntries",
		summary: "The caller's account entries, newest first, a page at a time",
		permission: read,
		status: 200,
		response: answer.entryPage,
		errors: SERVICE_CALL_FAILURES,
		params: {
			$$strict: true,
			currency: { ...currency, optional: true },
			cursor,
			limit: { type: "number", integer: true, min: 1, max: MAX_PAGE, default: 20, convert: true }
		},
		handler(ctx, params: { currency?: string; cursor?: string; limit: number }) {
			return ctx.call("sv-money.entries", { ...params, userId: ctx.locals.user.id });
		}
	}),
	wallet({
		method: "POST",
		path: "/api/v1/wallet/transfers",
		name: "transfer",
		summary: "Send money to another user (by username or user id)",
		permission: pay,
		idempotencyKey: true,
		status: 201,
		alsoAnswers: REPLAY,
		response: answer.transferView,
		errors: [...SERVICE_CALL_FAILURES, ...PAYMENT_REFUSALS],
		params: { $$strict: true, to: recipient, amount, currency, memo },
		async handler(ctx, params: { to: string; amount: string; currency: string; memo?: string }) {
			const { transfer, replayed } = await ctx.call<{ transfer: { id: string }; replayed: boolean }, unknown>("sv-money.transfer", {
				...params,
				userId: ctx.locals.user.id,
				idempotencyKey: ctx.locals.idempotencyKey
			});
			return createdOrReplayed(ctx, `/api/v1/wallet/transfers/${transfer.id}`, transfer, replayed);
		}
	}),
	wallet({
		method: "GET",
		path: "/api/v1/wallet/transfers/:id",
		name: "myTransfer",
		summary: "One of the caller's transfers, sent or received",
		permission: read,
		status: 200,
		response: answer.transferView,
		errors: [...SERVICE_CALL_FAILURES, refused.transferNotFound],
		params: { $$strict: true, id: entityId },
		handler(ctx, params: { id: string }) {
			return ctx.call("sv-money.getTransfer", { userId: ctx.locals.user.id, id: params.id });
		}
	}),
	wallet({
		method: "POST",
		path: "/api/v1/wallet/holds",
		name: "placeHold",
		summary: "Hold money for another user until captured, voided or expired",
		permission: pay,
		idempotencyKey: true,
		status: 201,
		alsoAnswers: REPLAY,
		response: answer.holdView,
		errors: [...SERVICE_CALL_FAILURES, ...PAYMENT_REFUSALS],
		params: {
			$$strict: true,
			to: recipient,
			amount,
			currency,
			expiresInSeconds,
			memo
		},
		async handler(ctx, params: { to: string; amount: string; currency: string; expiresInSeconds?: number; memo?: string }) {
			const { hold, replayed } = await ctx.call<{ hold: { id: string }; replayed: boolean }, unknown>("sv-money.placeHold", {
				...params,
				userId: ctx.locals.user.id,
				idempotencyKey: ctx.locals.idempotencyKey
			});
			return createdOrReplayed(ctx, `/api/v1/wallet/holds/${hold.id}`, hold, replayed);
		}
	}),
	wallet({
		method: "GET",
		path: "/api/v1/wallet/holds/:id",
		name: "myHold",
		summary: "One of the caller's holds",
		permission: read,
		status: 200,
		response: answer.holdView,
		errors: [...SERVICE_CALL_FAILURES, refused.holdNotFound],
		params: { $$strict: true, id: entityId },
		handler(ctx, params: { id: string }) {
			return ctx.call("sv-money.getHold", { userId: ctx.locals.user.id, id: params.id });
		}
	}),
	wallet({
		method: "POST",
		path: "/api/v1/wallet/holds/:id/capture",
		name: "captureHold",
		summary: "Pay a pending hold to its recipient",
		permission: pay,
		status: 200,
		response: answer.holdView,
		errors: [...SERVICE_CALL_FAILURES, refused.holdNotFound, refused.holdNotPending, refused.recipientNotFound, refused.walletFrozen],
		params: { $$strict: true, id: entityId },
		handler(ctx, params: { id: string }) {
			return ctx.call("sv-money.captureHold", { userId: ctx.locals.user.id, id: params.id });
		}
	}),
	wallet({
		method: "POST",
		path: "/api/v1/wallet/holds/:id/void",
		name: "voidHold",
		summary: "Release a pending hold's money back to the caller",
		permission: pay,
		status: 200,
		response: answer.holdView,
		errors: [...SERVICE_CALL_FAILURES, refused.holdNotFound, refused.holdNotPending],
		params: { $$strict: true, id: entityId },
		handler(ctx, params: { id: string }) {
			return ctx.call("sv-money.voidHold", { userId: ctx.locals.user.id, id: params.id });
		}
	})
];
