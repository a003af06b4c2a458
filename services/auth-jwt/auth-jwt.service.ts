import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { givenPassword, login, sessionId, userId } from "../../kernel/fields.ts";
import { Lru } from "../../kernel/lru.ts";
import type { PiiKeys } from "../../kernel/sealing.ts";
import { piiKeysFromEnv } from "../../kernel/sealing.ts";
import { actorOf, audit } from "../../mixins/audit.mixin.ts";
import type { DbVars } from "../../mixins/db.mixin.ts";
import { dbMixin } from "../../mixins/db.mixin.ts";
import type { MoveParticipantMethods } from "../../mixins/move-participant.mixin.ts";
import { moveParticipantMixin } from "../../mixins/move-participant.mixin.ts";
import type { ClientType } from "../../regions/region.ts";
import { CLIENT_TYPES } from "../../regions/region.ts";
import { envInt, envString } from "../../regions/runtime/env.ts";
import { METRIC } from "../../regions/runtime/metric-names.ts";
import type { RegionRuntime } from "../../regions/runtime/region-runtime.ts";
import { regionRuntimeOf } from "../../regions/runtime/region-runtime.ts";
import { InvalidCredentialsError, NoSigningKeyError, RefreshInvalidError, RevocationsUnknownError, SessionRevokedError, TokenRefusedError } from "./errors.ts";
import { FeedPublisher, REVOCATION_TTL_MS } from "./feed-publisher.ts";
import { KeyRing } from "./key-ring.ts";
import { MemoryKnownIps, RedisKnownIps } from "./known-ips.ts";
import type { LoginParams } from "./login-flow.ts";
import { logIn } from "./login-flow.ts";
import { LoginGate } from "./login-gate.ts";
import { MemoryLoginThrottle, RedisLoginThrottle } from "./login-throttle.ts";
import { migrations } from "./migrations.ts";
import type { FeedBeat, FeedPage } from "./revocation-feed.ts";
import { RevocationFeed } from "./revocation-feed.ts";
import type { OpenedSession } from "./session-store.ts";
import { REFRESH_TOKEN, SessionStore } from "./session-store.ts";
import type { KeySet } from "./signing-keys.ts";
import { SigningKeys } from "./signing-keys.ts";
import type { TokenSettings, Tokens, VerifiedAccess, WxTokens } from "./tokens.ts";
import { ACCESS_TTL_S, signAccess, TokenError, verifyAccess } from "./tokens.ts";
import type { WxSettings } from "./wechat.ts";
import { wxSettingsFromEnv } from "./wechat.ts";
import { WechatLogin } from "./wechat-login.ts";

export interface AuthSettings extends ServiceSettingSchema {
	issuer: string;
	audience: string;
	/** How often each node announces its region's feed position and keys. */
	feedIntervalMs: number;
	/** A region not heard from for this long: its users' tokens get AUTH_UNAVAILABLE. */
	feedStaleMs: number;
	/** Verified tokens kept per node (0: check every signature). */
	verifiedCacheSize: number;
	rotateAfterMs: number;
	publishLeadMs: number;
	retireAfterMs: number;
	/** WeChat mini-program login; without an appId and secret wxLogin answers WX_NOT_CONFIGURED. */
	wx: WxSettings;
}

interface Vars extends DbVars<unknown> {
	runtime: RegionRuntime;
	sealing: PiiKeys;
	gate: LoginGate;
	sessions: SessionStore;
	ring: KeyRing;
	feed: RevocationFeed;
	publisher: FeedPublisher;
	wechat: WechatLogin;
	keys: SigningKeys;
	current: KeySet;
	/** Tokens whose signature and claims were checked, until they expire: by `cacheKey`, a hit only for the very token. */
	verified: Lru<{ token: string; claims: VerifiedAccess }>;
	timers: NodeJS.Timeout[];
}

interface Methods extends MoveParticipantMethods {
	issue(session: OpenedSession): Promise<Tokens>;
	refreshKeys(): Promise<void>;
	verifyToken(token: string, client?: ClientType): VerifiedAccess | Promise<VerifiedAccess>;
	/** `now`: the time the caller read for this check, when it read one without waiting since. */
	acceptClaims(claims: VerifiedAccess, client?: ClientType, now?: number): VerifiedAccess;
	fromHome(claims: VerifiedAccess, client?: ClientType, now?: number): VerifiedAccess | Promise<VerifiedAccess>;
}

const client = { type: "enum", values: [...CLIENT_TYPES] } as const;
const token = { type: "string", min: 1, max: 4096 } as const;
const refreshToken = { type: "string", min: 70, max: 70, pattern: REFRESH_TOKEN, messages: { stringPattern: "not a refresh token" } } as const;

const tokenSettings = (s: AuthSettings): TokenSettings => ({ issuer: s.issuer, audience: s.audience });

/** Characters of a token's tail that key the verified-token cache: 96 bits of its signature. */
const CACHE_KEY_CHARS = 16;

/**
 * Where a verified token is cached: the last characters of its signature. A lookup hashes this
 * short tail, not the whole token or signature (a new string per request, hashed anew: a
 * measurable share of a request); the entry keeps the whole token, and only that very token is a
 * hit, so tokens that share a tail can only miss.
 */
const cacheKey = (token: string): string => token.slice(-CACHE_KEY_CHARS);

function settingsFromEnv(env = process.env): AuthSettings {
	return {
		issuer: envString(env, "EDGEHOME_JWT_ISSUER", "edgehome"),
		audience: envString(env, "EDGEHOME_JWT_AUDIENCE", "edgehome-api"),
		feedIntervalMs: envInt(env, "EDGEHOME_AUTH_FEED_MS", 500, 50, 2000),
		feedStaleMs: envInt(env, "EDGEHOME_AUTH_FEED_STALE_MS", 5000, 500, 60_000),
		verifiedCacheSize: envInt(env, "EDGEHOME_AUTH_VERIFIED_CACHE", 50_000, 0),
		rotateAfterMs: envInt(env, "EDGEHOME_JWT_ROTATE_DAYS", 30, 1, 365) * 24 * 3600_000,
		publishLeadMs: envInt(env, "EDGEHOME_JWT_PUBLISH_LEAD_S", 120, 1, 86_400) * 1000,
		retireAfterMs: REVOCATION_TTL_MS,
		wx: wxSettingsFromEnv(env),
		// Settings travel in service listings; the app secret must not.
		$secureSettings: ["wx.secret"]
	};
}

/**
 * Sessions and tokens. Login works at any region: the password is checked and the session opened
 * in the user's home region, which signs the access token (ES256) with its own key. Sessions are
 * per user and client type; refresh tokens rotate on every use and a replayed one ends its
 * session (session-store.ts). Every node verifies locally against the combined keys of all
 * regions and its own view of every region's revocation feed — and refuses (503) rather than
 * guesses when that view is not current. auth-jwt is region-aware by contract: tokens name their
 * home region (`rgn`) and keys their signing region (`kid`).
 */
const authJwt: ServiceSchema<AuthSettings, Methods, Vars> = {
	name: "auth-jwt",
	mixins: [dbMixin(migrations), moveParticipantMixin()],
	settings: settingsFromEnv(),

	actions: {
		login: {
			params: { $$strict: true, login, password: givenPassword, client },
			/** At the region that received the request (login-flow.ts); the client IP is `meta.clientIp`, set by the gateway. */
			handler(ctx: Context<LoginParams, { clientIp?: string }>): Promise<Tokens> {
				return logIn(ctx, this.gate, typeof ctx.meta.clientIp === "string" ? ctx.meta.clientIp.slice(0, 64) : undefined);
			}
		},

		authenticate: {
			// A password check past login's throttle that opens a session: only login's steps call it.
			restricted: "login",
			visibility: "public",
			home: "userId",
			params: { $$strict: true, userId, password: givenPassword, client },
			/**
			 * At the home: the password, the session. The budgets are the entry region's (login's): one
			 * counted here, per account, would refuse known accounts only and so tell them apart.
			 */
			async handler(ctx: Context<{ userId: string; password: string; client: ClientType }, { clientIp?: string }>): Promise<Tokens> {
				const { userId: user, client: type } = ctx.params;
				const { ok } = await ctx.call<{ ok: boolean }, unknown>("sv-user.verify", { userId: user, password: ctx.params.password });
				const clientIp = typeof ctx.meta.clientIp === "string" ? ctx.meta.clientIp : undefined;
				const loggedIn = (outcome: "success" | "failure", detail: Record<string, string>) =>
					audit(this.broker, ctx, { actor: user, action: "auth.login", target: user, outcome, detail: { client: type, ...detail }, clientIp });
				if (!ok) {
					await loggedIn("failure", { reason: "wrong-password" });
					throw new InvalidCredentialsError();
				}
				const tokens = await this.issue(await this.sessions.open(user, type));
				await loggedIn("success", { sid: tokens.sid });
				return tokens;
			}
		},

		wxLogin: {
			params: { $$strict: true, code: { type: "string", min: 1, max: 128, pattern: /^[A-Za-z0-9_-]+$/ } },
			/** At the region that received the request (wechat-login.ts). */
			handler(ctx: Context<{ code: string }>): Promise<WxTokens> {
				return this.wechat.logIn(ctx, ctx.params.code);
			}
		},

		openSession: {
			restricted: "mint",
			visibility: "public",
			home: "userId",
			params: { $$strict: true, userId, client },
			/** For logins checked elsewhere (WeChat). Only for a user whose profile is there: one found by openid may still be being registered. */
			async handler(ctx: Context<{ userId: string; client: ClientType }>): Promise<Tokens> {
				await ctx.call("sv-user.get", { userId: ctx.params.userId });
				return this.issue(await this.sessions.open(ctx.params.userId, ctx.params.client));
			}
		},

		refresh: {
			/** `client`: the gateway's client type; another type's refresh token is refused, not exchanged. */
			params: { $$strict: true, refreshToken, client: { ...client, optional: true } },
			handler(ctx: Context<{ refreshToken: string; client?: ClientType }>): Promise<Tokens> {
				const [, owner] = REFRESH_TOKEN.exec(ctx.params.refreshToken)!;
				return ctx
					.call<Tokens, unknown>("auth-jwt.rotate", { userId: owner, refreshToken: ctx.params.refreshToken, client: ctx.params.client })
					.catch((err: { type?: string }) => {
						// A token naming a user nobody knows is just an invalid token.
						if (err.type === "USER_NOT_FOUND") throw new RefreshInvalidError();
						throw err;
					});
			}
		},

		rotate: {
			visibility: "public",
			home: "userId",
			params: { $$strict: true, userId, refreshToken, client: { ...client, optional: true } },
			async handler(ctx: Context<{ userId: string; refreshToken: string; client?: ClientType }>): Promise<Tokens> {
				const session = await this.sessions.rotate(ctx.params.userId, ctx.params.refreshToken, ctx.params.client).catch(async (err: { type?: string }) => {
					// A replayed refresh token ended its session: a stolen token, or a client that kept an old one.
					if (err.type === "REFRESH_REUSED")
						await audit(this.broker, ctx, { actor: ctx.params.userId, action: "auth.refresh-reused", target: ctx.params.userId, outcome: "refused" });
					throw err;
				});
				return this.issue(session);
			}
		},

		logout: {
			params: { $$strict: true, accessToken: token },
			async handler(ctx: Context<{ accessToken: string }>) {
				const claims = await this.verifyToken(ctx.params.accessToken);
				await ctx.call("auth-jwt.endSession", { userId: claims.sub, sid: claims.sid });
				return { ended: true };
			}
		},

		endSession: {
			// Ends any user's session by its id (which `sessions` lists): gateways call it for the token's own session.
			restricted: "mint",
			visibility: "public",
			home: "userId",
			params: { $$strict: true, userId, sid: sessionId },
			async handler(ctx: Context<{ userId: string; sid: string }>) {
				await this.sessions.endOwn(ctx.params.userId, ctx.params.sid, "logout");
				// The user's own logout, or staff ending it (a gateway names its caller in meta.user).
				const by = actorOf(ctx, "auth-jwt");
				const own = by === ctx.params.userId || by.startsWith("system:");
				await audit(this.broker, ctx, {
					actor: own ? ctx.params.userId : by,
					action: own ? "auth.logout" : "auth.session-ended",
					target: ctx.params.userId,
					outcome: "success",
					detail: { sid: ctx.params.sid }
				});
				return { ended: true };
			}
		},

		sessions: {
			home: { param: "userId", readonly: true },
			params: { $$strict: true, userId },
			handler(ctx: Context<{ userId: string }>) {
				return this.sessions.list(ctx.params.userId);
			}
		},

		/** Local to the calling node: no network hop, keys and revocations are already here. */
		verify: {
			params: { $$strict: true, token, client: { ...client, optional: true } },
			async handler(ctx: Context<{ token: string; client?: ClientType }>) {
				return this.verifyToken(ctx.params.token, ctx.params.client);
			}
		},

		jwks: {
			params: { $$strict: true },
			handler() {
				return this.ring.jwks();
			}
		},

		/** Ops: publishes this region's next signing key now; it signs once every region has had time to trust it. */
		rotateKeys: {
			restricted: "mint",
			params: { $$strict: true },
			async handler() {
				const next = await this.keys.rotate();
				await this.refreshKeys();
				return { kid: next.kid, activatesAt: new Date(next.activatesAt).toISOString() };
			}
		},

		/** This region's feed after `afterId`: what a node pulls when it missed revocations or keys. */
		feedSince: {
			params: { $$strict: true, afterId: { type: "number", integer: true, min: -1 } },
			handler(ctx: Context<{ afterId: number }>): Promise<FeedPage> {
				return this.publisher.page(ctx.params.afterId, this.current);
			}
		},

		stats: {
			params: { $$strict: true },
			handler() {
				const regions = this.runtime.regions.map(r => r.id);
				return {
					region: this.runtime.region.id,
					revoked: this.feed.size,
					current: Object.fromEntries(regions.map(r => [r, this.feed.current(r)])),
					keys: this.ring.jwks().keys.map(k => k.kid),
					signing: this.current.signer?.kid
				};
			}
		}
	},

	events: {
		"auth-jwt.revoked": {
			restricted: "mint",
			global: true,
			params: { sids: { type: "array", items: "string", max: 1000 }, exp: "number" },
			handler(ctx: Context<{ sids: string[]; exp: number }>) {
				for (const s of ctx.params.sids) this.feed.revoke(s, ctx.params.exp);
			}
		},
		"auth-jwt.feed": {
			restricted: "mint",
			global: true,
			params: { region: "string", maxId: "number", keys: "string" },
			handler(ctx: Context<FeedBeat>) {
				void this.feed.beat(ctx.params);
			}
		}
	},

	methods: {
		/** The session's tokens: a fresh access token signed by this region's current key, and its refresh token. */
		async issue(session) {
			const signer = this.current.signer;
			if (!signer) throw new NoSigningKeyError();
			const home = await this.runtime.directory.home(session.userId);
			const claims = { sub: session.userId, rgn: this.runtime.region.id, ep: home?.epoch ?? 0, cli: session.client, sid: session.sid };
			const accessToken = await signAccess(tokenSettings(this.settings), signer, claims);
			return {
				accessToken,
				refreshToken: session.refreshToken,
				tokenType: "Bearer",
				expiresIn: ACCESS_TTL_S,
				region: this.runtime.region.id,
				userId: session.userId,
				sid: session.sid
			};
		},

		async refreshKeys() {
			await this.keys.tick();
			this.current = await this.keys.load();
			if (this.current.rotatesAt !== undefined && this.broker.isMetricsEnabled())
				this.broker.metrics.set(METRIC.signingKeyRotation, this.current.rotatesAt / 1000);
			this.ring.setRegion(this.runtime.region.id, this.current.published as unknown as Record<string, unknown>[]);
		},

		/**
		 * A client sends the same token for its whole 15 minutes: its signature is checked once per
		 * node, and the cached result is used only while the token is unexpired and its key still
		 * trusted. The user's home and the session's revocation state are checked on every call.
		 */
		verifyToken(raw, expected) {
			const key = cacheKey(raw);
			const entry = this.verified.peek(key);
			const claims = entry && entry.token === raw ? entry.claims : undefined;
			// One clock read for the expiry and the revocation check (each read is a measurable cost on some hosts).
			const now = Date.now();
			if (claims && claims.exp * 1000 > now && this.ring.keys.has(claims.kid)) return this.fromHome(claims, expected, now);
			if (claims) this.verified.delete(key);
			return verifyAccess(tokenSettings(this.settings), this.ring.keys, raw).then(
				fresh => {
					this.verified.set(key, { token: raw, claims: fresh });
					return this.fromHome(fresh, expected);
				},
				err => {
					if (err instanceof TokenError) throw new TokenRefusedError(err.code, err.message);
					throw err;
				}
			);
		},

		/**
		 * Only the user's home signs the user's tokens: `rgn` (the signing key's region) must be where
		 * the directory says the user lives, or one region's key could sign for another region's
		 * users by naming itself. A token from before a move is refused; the client refreshes.
		 */
		fromHome(claims, expected, now) {
			if (this.runtime.directory.cached(claims.sub)?.region === claims.rgn) return this.acceptClaims(claims, expected, now);
			return (async () => {
				// This node's view first, then the origin (a move this node has not heard of yet).
				if ((await this.runtime.directory.home(claims.sub))?.region !== claims.rgn && (await this.runtime.directory.refresh(claims.sub))?.region !== claims.rgn)
					throw new TokenRefusedError("TOKEN_REGION", "token was not signed by the user's home region");
				return this.acceptClaims(claims, expected);
			})();
		},

		/** Verified claims are accepted for this client type while their session is not revoked (and that is known). */
		acceptClaims(claims, expected, now = Date.now()) {
			if (expected && claims.cli !== expected) throw new TokenRefusedError("TOKEN_CLIENT", "token belongs to another client type");
			const state = this.feed.check(claims.rgn, claims.sid, now);
			if (state === "stale") throw new RevocationsUnknownError(claims.rgn);
			if (state === "revoked") throw new SessionRevokedError();
			return claims;
		},

		moveExport(user) {
			return this.sessions.exportUser(user);
		},
		moveImport(user, rows) {
			return this.sessions.importUser(user, rows);
		},
		moveCount(user) {
			return this.sessions.countUser(user);
		},
		moveDelete(user) {
			return this.sessions.deleteUser(user);
		}
	},

	created() {
		this.sealing = piiKeysFromEnv(process.env, "seal signing keys at rest");
		this.runtime = regionRuntimeOf(this.broker);
		this.ring = new KeyRing();
		this.verified = new Lru(this.settings.verifiedCacheSize);
		this.timers = [];
		this.wechat = new WechatLogin(this.settings.wx, (message, data) => this.logger.warn(message, data));
		this.feed = new RevocationFeed({
			// This region's feed is in this region's database: read there, it needs no bus and no other node.
			pull: (region, afterId) =>
				region === this.runtime.region.id
					? this.publisher.page(afterId, this.current)
					: this.runtime.call<FeedPage>(region, "auth-jwt.feedSince", { afterId }, { timeout: 2000 }),
			onKeys: (region, keys) => {
				if (region !== this.runtime.region.id) this.ring.setRegion(region, keys);
			},
			staleMs: this.settings.feedStaleMs,
			onError: (region, err) => this.logger.warn(`revocation feed of ${region} could not be read: ${err.message}`)
		});
	},

	async started() {
		const redis = this.runtime.stores.redis;
		this.gate = redis
			? new LoginGate(new RedisLoginThrottle(redis), new RedisKnownIps(redis), this.sealing.loginThrottle)
			: new LoginGate(new MemoryLoginThrottle(), new MemoryKnownIps(), this.sealing.loginThrottle);
		this.sessions = new SessionStore(this.db, (sids, exp) => this.broker.broadcast("auth-jwt.revoked", { sids, exp }));
		this.publisher = new FeedPublisher(this.db, this.runtime.region.id, beat => this.broker.broadcast("auth-jwt.feed", beat));
		this.keys = new SigningKeys(this.db, this.runtime.region.id, this.sealing, {
			rotateAfterMs: this.settings.rotateAfterMs,
			publishLeadMs: this.settings.publishLeadMs,
			retireAfterMs: this.settings.retireAfterMs
		});
		await this.refreshKeys();
		const every = (ms: number, job: () => Promise<unknown>, what: string) => {
			const timer = setInterval(() => void job().catch(err => this.logger.warn(`${what} failed: ${(err as Error).message}`)), ms);
			timer.unref();
			this.timers.push(timer);
		};
		every(this.settings.feedIntervalMs, () => this.publisher.beat(this.current), "feed beat");
		every(Math.max(1000, this.settings.feedIntervalMs * 10), () => this.refreshKeys(), "key rotation");
		every(
			60_000,
			async () => {
				const now = Date.now();
				this.feed.prune(now);
				await this.publisher.prune(now);
				await this.sessions.pruneRefreshTokens(now);
			},
			"expiry sweep"
		);
		// Its own broadcast reaches this service only once it has started: it takes its region's first beat itself, so that
		// it can check this region's tokens as soon as the broker (and /readyz) says it is up.
		await this.feed.beat(await this.publisher.beat(this.current));
	},

	stopped() {
		for (const t of this.timers) clearInterval(t);
	}
};

export default authJwt;
