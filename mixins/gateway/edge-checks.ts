import { Errors } from "moleculer";
import type { ClientType } from "../../regions/region.ts";
import type { RateDecision, RateLimit } from "./rate-limiter.ts";
import type { GatewayContext, GatewayRequest, GatewayRoute, GatewayService } from "./routes.ts";

/**
 * Every request's edge checks, in order: the client IP's rate limit; then, on routes that need a
 * user, the bearer token (verified on this node, for this gateway's client type), the user's rate
 * limit and the route's permission. They wait only on what is pending (`andThen`): almost always
 * they are answered from memory, and an await per check was a measurable share of a request.
 */

/** How long an RBAC decision is reused on a gateway node (the rules converge within a second anyway). */
const DECISION_TTL_MS = 1000;
/** Longest Authorization header looked at: the scheme, spaces and a token far larger than ours. */
const MAX_AUTHORIZATION = 4096 + 16;

type Claims = { sub: string; sid: string; rgn: string; cli: ClientType };
type Permission = { resource: string; action: string };

/** What a user's checks look up: the user's rate-limit key, and the RBAC decision key per route permission. */
interface UserKeys {
	rate: string;
	decisions: Map<Permission, string>;
}

/**
 * The keys of a token's user, made once per claims object: the verifier answers every request with
 * a token by the one object it cached, and building and hashing these strings anew was a
 * measurable share of a request. Other claims objects (a remote verifier's) just get their own.
 */
const keysOfClaims = new WeakMap<Claims, UserKeys>();

function userKeys(claims: Claims): UserKeys {
	let keys = keysOfClaims.get(claims);
	if (!keys) keysOfClaims.set(claims, (keys = { rate: `user:${claims.sub}`, decisions: new Map() }));
	return keys;
}

function decisionKey(userId: string, permission: Permission): string {
	return `${userId}\0${permission.resource}\0${permission.action}`;
}

function decisionKeyOf(keys: UserKeys, userId: string, permission: Permission): string {
	let key = keys.decisions.get(permission);
	if (key === undefined) keys.decisions.set(permission, (key = decisionKey(userId, permission)));
	return key;
}

/** `fn(value)`, waiting first only when `value` is pending. */
export function andThen<T, R>(value: T | Promise<T>, fn: (value: T) => R | Promise<R>): R | Promise<R> {
	return value instanceof Promise ? value.then(fn) : fn(value);
}

function refuseUnlessAllowed(allowed: boolean): void {
	// The one place FORBIDDEN comes from: an RBAC refusal. Services' own 403s keep their codes.
	if (!allowed) throw new Errors.MoleculerClientError("not allowed", 403, "FORBIDDEN");
}

function refuseOverLimit(decision: RateDecision): void {
	if (!decision.ok) throw new Errors.MoleculerClientError("too many requests", 429, "RATE_LIMITED", { retryAfter: decision.retryAfterS });
}

export function unauthorized(message: string): Errors.MoleculerClientError {
	return new Errors.MoleculerClientError(message, 401, "UNAUTHORIZED");
}

/**
 * The token of an `Authorization: Bearer <token>` header. The scheme is case-insensitive and
 * followed by one or more spaces (RFC 9110, 11.1 and 11.4); the token's own form is the verifier's.
 */
export function bearerToken(header: string | undefined): string | undefined {
	if (!header || header.length > MAX_AUTHORIZATION) return undefined;
	if (!header.startsWith("Bearer ") && !(header.charCodeAt(6) === 32 && header.slice(0, 6).toLowerCase() === "bearer")) return undefined;
	let start = 7;
	while (header.charCodeAt(start) === 32) start++;
	return start < header.length ? header.slice(start) : undefined;
}

/**
 * The token's claims, verified for this gateway's client type. Keys and revocations are local, no
 * hop per request; when auth-jwt runs here (it should), its verifier is called directly rather
 * than through a broker call.
 */
function verifyToken(service: GatewayService, ctx: GatewayContext, token: string): Claims | Promise<Claims> {
	const local = service.broker.getLocalService("auth-jwt") as { verifyToken?: (token: string, client: ClientType) => Claims | Promise<Claims> } | undefined;
	return local?.verifyToken
		? local.verifyToken(token, service.settings.client)
		: ctx.call<Claims, unknown>("auth-jwt.verify", { token, client: service.settings.client }, { nodeID: service.broker.nodeID });
}

/**
 * Whether the request's bearer token still verifies, for an answer that outlives the request (a
 * live stream): false once its session ended, it expired, or the user moved (the client comes back
 * with a new token). A check that cannot be made now (revocations unknown for a while) is a yes.
 */
export function stillAuthenticated(this: GatewayService, ctx: GatewayContext, req: GatewayRequest): Promise<boolean> {
	const token = bearerToken(req.headers.authorization);
	if (!token) return Promise.resolve(false);
	return Promise.resolve()
		.then(() => verifyToken(this, ctx, token))
		.then(
			() => true,
			(err: { code?: unknown }) => err?.code !== 401
		);
}

/**
 * moleculer-web's authentication hook (one hook runs every check: each costs a request an await).
 * The user goes to `ctx.locals.user`; what this returns, moleculer-web puts in `ctx.meta.user` for
 * the services: the id alone.
 */
export function authenticate(
	this: GatewayService,
	ctx: GatewayContext,
	_route: unknown,
	req: GatewayRequest
): { id: string } | null | Promise<{ id: string } | null> {
	ctx.locals.clientIp = req.$clientIp!;
	const route = (req.$alias?.handler as { route?: GatewayRoute } | undefined)?.route;
	req.$gatewayRoute = route;
	return andThen(this.limit(`ip:${req.$clientIp}`, this.settings.rateLimits.ip), () => (route?.auth ? this.authenticateUser(ctx, req, route) : null));
}

/** The bearer token (verified on this node, for this gateway's client type), the user's rate limit, the route's permission. */
export function authenticateUser(
	this: GatewayService,
	ctx: GatewayContext,
	req: GatewayRequest,
	route: GatewayRoute
): { id: string } | Promise<{ id: string }> {
	const token = bearerToken(req.headers.authorization);
	if (!token) throw unauthorized("a bearer access token is required");
	return andThen(verifyToken(this, ctx, token), claims => {
		const keys = userKeys(claims);
		const permission = route.permission;
		// One clock read for both checks (each read is a measurable cost on some hosts); a pending limit reads its own.
		const now = Date.now();
		const limited = this.limit(keys.rate, this.settings.rateLimits.user, now);
		return andThen(limited, () =>
			andThen(
				permission ? this.authorize(ctx, claims.sub, permission, decisionKeyOf(keys, claims.sub, permission), limited ? undefined : now) : undefined,
				() => {
					ctx.locals.user = { id: claims.sub, sid: claims.sid, region: claims.rgn, client: claims.cli };
					return { id: claims.sub };
				}
			)
		);
	});
}

/** RBAC for one route; a decision is reused for DECISION_TTL_MS on this node. */
export function authorize(
	this: GatewayService,
	ctx: GatewayContext,
	userId: string,
	permission: Permission,
	key = decisionKey(userId, permission),
	now = Date.now()
): void | Promise<void> {
	const decision = this.decisions.peek(key);
	if (decision && now - decision.at <= DECISION_TTL_MS) return refuseUnlessAllowed(decision.allowed);
	return ctx.call<{ allowed: boolean }, unknown>("auth-rbac.enforce", { userId, ...permission }).then(({ allowed }) => {
		this.decisions.set(key, { allowed, at: now });
		refuseUnlessAllowed(allowed);
	});
}

export function limit(this: GatewayService, key: string, rateLimit: RateLimit, now?: number): void | Promise<void> {
	return andThen<RateDecision, void>(this.limiter.hit(key, rateLimit, now), refuseOverLimit);
}
