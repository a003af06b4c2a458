import type { CommonRouteErrors } from "../mixins/gateway/common-routes.ts";
import type { DeclaredError } from "../mixins/gateway/declared-errors.ts";
import { CALL_FAILURES, declared } from "../mixins/gateway/declared-errors.ts";
import {
	InvalidCredentialsError,
	RateLimitedError,
	RefreshConflictError,
	RefreshInvalidError,
	RefreshReusedError,
	RevocationsUnknownError,
	SessionNotFoundError,
	SessionRevokedError,
	UpstreamFailedError
} from "./auth-jwt/errors.ts";
import {
	AmountInvalidError,
	CurrencyNotSupportedError,
	HoldNotFoundError,
	HoldNotPendingError,
	IdempotencyKeyReusedError,
	InsufficientFundsError,
	RecipientNotFoundError,
	TransferNotFoundError,
	TransferToSelfError,
	WalletFrozenError
} from "./sv-money/errors.ts";
import { NoticeNotFoundError, SecurityNoticesRequiredError } from "./sv-notice/errors.ts";
import { IdentityInUseError, NothingToChangeError, PasswordHasUsernameError, ProfileNotFoundError } from "./sv-user/errors.ts";

/**
 * What the services behind the gateways' common routes may answer, read from their catalogues:
 * every gateway service hands this to its mixin, which documents each route with it.
 */

/** USERNAME_TAKEN, EMAIL_TAKEN, PHONE_TAKEN and IDENTITY_TAKEN for a kind sv-user has no code of its own for. */
const IDENTITY_IN_USE = ["username", "email", "phone", "(other)"].map(kind => declared(new IdentityInUseError(kind)));
const PROFILE_NOT_FOUND = declared(new ProfileNotFoundError());

/** Besides the region runtime's answers: a token's check may find a region's revocations unknown, an upstream may fail. */
const ANY_CALL = [declared(new RevocationsUnknownError("-")), declared(new UpstreamFailedError("-"))];

/** What any route of a gateway service that calls a service may answer, before that service's own errors. */
export const SERVICE_CALL_FAILURES: readonly DeclaredError[] = [...CALL_FAILURES, ...ANY_CALL];

export const COMMON_ROUTE_ERRORS: CommonRouteErrors = {
	anyCall: ANY_CALL,
	register: [...IDENTITY_IN_USE, declared(new PasswordHasUsernameError())],
	login: [declared(new InvalidCredentialsError()), declared(new RateLimitedError("-", 1))],
	refresh: [declared(new RefreshInvalidError()), declared(new RefreshReusedError()), declared(new SessionRevokedError()), declared(new RefreshConflictError())],
	logout: [],
	me: [PROFILE_NOT_FOUND],
	updateMe: [PROFILE_NOT_FOUND, ...IDENTITY_IN_USE, declared(new NothingToChangeError())],
	mySessions: [],
	endMySession: [declared(new SessionNotFoundError())],
	regions: [],
	jwks: []
};

/**
 * What sv-money may refuse, from its catalogue: each answered as raised, since a client must tell a
 * missing recipient from a missing route, and too little money from a malformed request.
 */
const money = (err: { type: string; code: number }) => declared(err, { asRaised: true });
export const MONEY_ERRORS = {
	insufficientFunds: money(new InsufficientFundsError("-", "0", "0")),
	currencyNotSupported: money(new CurrencyNotSupportedError("-")),
	amountInvalid: money(new AmountInvalidError("-")),
	transferToSelf: money(new TransferToSelfError()),
	idempotencyKeyReused: money(new IdempotencyKeyReusedError()),
	recipientNotFound: money(new RecipientNotFoundError("-")),
	transferNotFound: money(new TransferNotFoundError("-")),
	holdNotFound: money(new HoldNotFoundError("-")),
	holdNotPending: money(new HoldNotPendingError("-", "-")),
	walletFrozen: money(new WalletFrozenError("-"))
} as const;

/** What sv-notice may refuse a user, from its catalogue: answered as raised, since a missing notice is not a missing route. */
export const NOTICE_ERRORS = {
	noticeNotFound: declared(new NoticeNotFoundError("-"), { asRaised: true }),
	securityNoticesRequired: declared(new SecurityNoticesRequiredError(), { asRaised: true })
} as const;
