import { createHash, randomBytes, randomUUID } from "node:crypto";
import { Errors } from "moleculer";
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { dbMixin } from "../../mixins/db.mixin.ts";
import type { DbVars } from "../../mixins/db.mixin.ts";
import { moveParticipantMixin } from "../../mixins/move-participant.mixin.ts";
import type { MoveParticipantMethods } from "../../mixins/move-participant.mixin.ts";
import { CLIENT_TYPES } from "../../regions/region.ts";
import type { ClientType } from "../../regions/region.ts";
import { envInt, envString } from "../../regions/runtime/env.ts";
import { regionRuntimeOf } from "../../regions/runtime/region-runtime.ts";
import type { RegionRuntime } from "../../regions/runtime/region-runtime.ts";
import { Lru } from "../../kernel/lru.ts";
import { piiKeysFromEnv } from "../../kernel/sealing.ts";
import type { PiiKeys } from "../../kernel/sealing.ts";
import { KeyRing } from "./key-ring.ts";
import { MemoryKnownIps, RedisKnownIps } from "./known-ips.ts";
import { LoginGate } from "./login-gate.ts";
import { MemoryLoginThrottle, RedisLoginThrottle } from "./login-throttle.ts";
import { migrations } from "./migrations.ts";
import { RevocationFeed } from "./revocation-feed.ts";
import type { FeedBeat, FeedPage } from "./revocation-feed.ts";
import { SigningKeys } from "./signing-keys.ts";
import type { KeyRow, KeySet } from "./signing-keys.ts";
import { ACCESS_TTL_S, CLOCK_TOLERANCE_S, signAccess, TokenError, verifyAccess } from "./tokens.ts";
import type { TokenSettings, VerifiedAccess } from "./tokens.ts";
import { exchangeCode, wxConfigured, wxSettingsFromEnv } from "./wechat.ts";
import type { WxSettings } from "./wechat.ts";
import { sessionId, userId } from "../../kernel/fields.ts";

/** Refresh tokens live 30 days; a token spent this recently is a concurrent refresh, not a theft. */
export const REFRESH_TTL_MS = 30 * 24 * 3600_000;
export const REFRESH_GRACE_MS = 5000;
/** A revoked session matters until the last access token it got has expired. */
const REVOCATION_TTL_MS = (ACCESS_TTL_S + CLOCK_TOLERANCE_S) * 1000;
const FEED_PAGE = 5000;
/** How long a WeChat login waits for a user that another login is still registering. */
const WX_SETTLE_MS = 2000;

interface SessionRow {
	sid: string;
	user_id: string;
	client: ClientType;
	active_key: string | null;
	created_at: number;
	last_used_at: number;
	ended_at: number | null;
	end_reason: string | null;
}

interface RefreshRow {
	hash: string;
	sid: string;
	user_id: string;
	issued_at: number;
	expires_at: number;
	rotated_at: number | null;
}

interface RevocationRow {
	id: number;
	sid: string;
	expires_at: number;
	created_at: number;
}

interface Tables {
	auth_sessions: SessionRow;
	auth_refresh_tokens: RefreshRow;
	auth_revocations: RevocationRow;
	auth_keys: KeyRow;
}

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

export interface Tokens {
	accessToken: string;
	refreshToken: string;
	tokenType: "Bearer";
	expiresIn: number;
	region: string;
	userId: string;
	sid: string;
}

export interface WxTokens extends Tokens {
	/** This login registered the user. */
	created: boolean;
}

interface Vars extends DbVars<Tables> {
	runtime: RegionRuntime;
	sealing: PiiKeys;
	gate: LoginGate;
	ring: KeyRing;
	feed: RevocationFeed;
	keys: SigningKeys;
	current: KeySet;
	/** Tokens whose signature and claims were checked, by the token itself, until they expire. */
	verified: Lru<VerifiedAccess>;
	timers: NodeJS.Timeout[];
	/** First logins of an openid under way on this node, which later ones join. */
	registering: Map<string, Promise<string>>;
}

interface Methods extends MoveParticipantMethods {
	tokenSettings(): TokenSettings;
	issue(userId: string, sid: string, client: ClientType, refreshToken: string): Promise<Tokens>;
	openSession(userId: string, client: ClientType): Promise<Tokens>;
	endSessions(sids: string[], reason: string, now: number): Promise<void>;
	refreshKeys(): Promise<void>;
	feedPosition(): Promise<number>;
	beat(): Promise<void>;
	pull(region: string, afterId: number): Promise<FeedPage>;
	verifyToken(token: string, client?: ClientType): VerifiedAccess | Promise<VerifiedAccess>;
	acceptClaims(claims: VerifiedAccess, client?: ClientType): VerifiedAccess;
	fromHome(claims: VerifiedAccess, client?: ClientType): VerifiedAccess | Promise<VerifiedAccess>;
	wxUser(ctx: Context, openid: string): Promise<{ userId: string; created: boolean }>;
	wxSession(ctx: Context, userId: string): Promise<Tokens>;
}

const client = { type: "enum", values: [...CLIENT_TYPES] } as const;
const token = { type: "string", min: 1, max: 4096 } as const;
/** `<userId>.<secret>`: the user id lets any region route the refresh to the user's home. */
const REFRESH_TOKEN = /^([0-9a-z]{26})\.([A-Za-z0-9_-]{43})$/;
const refreshToken = { type: "string", min: 70, max: 70, pattern: REFRESH_TOKEN, messages: { stringPattern: "not a refresh token" } } as const;

const hashToken = (t: string) => createHash("sha256").update(t).digest("base64url");

function clientError(message: string, code: number, type: string, data?: unknown): Errors.MoleculerClientError {
	return new Errors.MoleculerClientError(message, code, type, data);
}

function refreshInvalid(): Errors.MoleculerClientError {
	return clientError("refresh token is not valid", 401, "REFRESH_INVALID");
}

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
 * session. Every node verifies locally against the combined keys of all regions and its own view
 * of every region's revocation feed — and refuses (503) rather than guesses when that view is
 * not current. auth-jwt is region-aware by contract: tokens name their home region (`rgn`) and
 * keys their signing region (`kid`).
 */
const authJwt: ServiceSchema<AuthSettings, Methods, Vars> = {
	name: "auth-jwt",
	mixins: [dbMixin<Tables>(migrations), moveParticipantMixin()],
	settings: settingsFromEnv(),

	actions: {
		login: {
			params: { $$strict: true, login: { type: "string", min: 3, max: 254 }, password: { type: "string", min: 1, max: 128 }, client },
			/**
			 * At the region that received the request: the login gate (budgets of the client IP, from
			 * `meta.clientIp` set by the gateway, and of the login string), then the check and session
			 * at the user's home. An unknown login costs the same scrypt work and gets the same error
			 * as a wrong password.
			 */
			async handler(ctx: Context<{ login: string; password: string; client: ClientType }, { clientIp?: string }>): Promise<Tokens> {
				const { login, password } = ctx.params;
				const pass = await this.gate.admit(login, typeof ctx.meta.clientIp === "string" ? ctx.meta.clientIp.slice(0, 64) : undefined);
				try {
					const found = await ctx.call<{ userId: string }, unknown>("sv-user.resolveLogin", { login }).catch((err: { type?: string }) => {
						if (err.type === "USER_NOT_FOUND") return undefined;
						throw err;
					});
					if (!found) {
						await ctx.call("sv-user.checkPassword", { login, password });
						throw clientError("login or password is wrong", 401, "INVALID_CREDENTIALS");
					}
					const tokens = await ctx.call<Tokens, unknown>("auth-jwt.authenticate", { userId: found.userId, password, client: ctx.params.client });
					await pass.succeeded();
					return tokens;
				} catch (err) {
					// Only a wrong password spends the budgets.
					await ((err as { type?: string }).type === "INVALID_CREDENTIALS" ? pass.failed() : pass.unchecked());
					throw err;
				}
			}
		},

		authenticate: {
			visibility: "public",
			home: "userId",
			params: { $$strict: true, userId, password: { type: "string", min: 1, max: 128 }, client },
			/**
			 * At the home: the password, the session. The budgets are the entry region's (login's): one
			 * counted here, per account, would refuse known accounts only and so tell them apart.
			 */
			async handler(ctx: Context<{ userId: string; password: string; client: ClientType }>): Promise<Tokens> {
				const { ok } = await ctx.call<{ ok: boolean }, unknown>("sv-user.verify", { userId: ctx.params.userId, password: ctx.params.password });
				if (!ok) throw clientError("login or password is wrong", 401, "INVALID_CREDENTIALS");
				return this.openSession(ctx.params.userId, ctx.params.client);
			}
		},

		wxLogin: {
			params: { $$strict: true, code: { type: "string", min: 1, max: 128, pattern: /^[A-Za-z0-9_-]+$/ } },
			/**
			 * At the region that received the request: the wx.login() code becomes an openid at WeChat,
			 * which finds the user or registers one (homed here); the session opens at the home. No IP
			 * budget: WeChat limits code exchanges itself.
			 */
			async handler(ctx: Context<{ code: string }>): Promise<WxTokens> {
				if (!wxConfigured(this.settings.wx)) throw new Errors.MoleculerError("WeChat login is not configured", 503, "WX_NOT_CONFIGURED");
				const { openid } = await exchangeCode(this.settings.wx, ctx.params.code).catch((err: Errors.MoleculerError) => {
					// Ours to fix (a wrong secret answers with an errcode too); the data names no secret.
					if (err.code >= 500) this.logger.warn(`WeChat code exchange failed: ${err.type}`, err.data);
					throw err;
				});
				const { userId: user, created } = await this.wxUser(ctx, openid);
				return { ...(await this.wxSession(ctx, user)), created };
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
				return this.openSession(ctx.params.userId, ctx.params.client);
			}
		},

		refresh: {
			/** `client`: the gateway's client type; another type's refresh token is refused, not exchanged. */
			params: { $$strict: true, refreshToken, client: { ...client, optional: true } },
			handler(ctx: Context<{ refreshToken: string; client?: ClientType }>): Promise<Tokens> {
				const [, owner] = REFRESH_TOKEN.exec(ctx.params.refreshToken)!;
				return ctx.call<Tokens, unknown>("auth-jwt.rotate", { userId: owner, refreshToken: ctx.params.refreshToken, client: ctx.params.client }).catch((err: { type?: string }) => {
					// A token naming a user nobody knows is just an invalid token.
					if (err.type === "USER_NOT_FOUND") throw refreshInvalid();
					throw err;
				});
			}
		},

		rotate: {
			visibility: "public",
			home: "userId",
			params: { $$strict: true, userId, refreshToken, client: { ...client, optional: true } },
			/**
			 * Spends the token (one conditional update: of two concurrent refreshes exactly one wins)
			 * and issues the next one of the same session. A token spent more than the grace window ago
			 * is a replay: the whole session (the token family) ends.
			 */
			async handler(ctx: Context<{ userId: string; refreshToken: string; client?: ClientType }>): Promise<Tokens> {
				const now = Date.now();
				const hash = hashToken(ctx.params.refreshToken);
				const found = await this.db
					.selectFrom("auth_refresh_tokens")
					.innerJoin("auth_sessions", "auth_sessions.sid", "auth_refresh_tokens.sid")
					.select(["auth_refresh_tokens.sid", "auth_refresh_tokens.user_id", "auth_sessions.client", "auth_sessions.ended_at"])
					.where("auth_refresh_tokens.hash", "=", hash)
					.where("auth_refresh_tokens.user_id", "=", ctx.params.userId)
					.executeTakeFirst();
				// Checked before anything is spent: a token shown at the wrong gateway stays usable at its own.
				if (!found || found.ended_at !== null || (ctx.params.client && found.client !== ctx.params.client)) throw refreshInvalid();
				const spent = await this.db
					.updateTable("auth_refresh_tokens")
					.set({ rotated_at: now })
					.where("hash", "=", hash)
					.where("rotated_at", "is", null)
					.where("expires_at", ">", now)
					.executeTakeFirst();
				if (Number(spent.numUpdatedRows) !== 1) {
					// Lost: expired, or spent by someone else — just now (a concurrent refresh) or long ago (a replay).
					const row = await this.db.selectFrom("auth_refresh_tokens").select(["rotated_at", "expires_at"]).where("hash", "=", hash).executeTakeFirst();
					if (!row || row.rotated_at === null || Number(row.expires_at) <= now) throw refreshInvalid();
					if (now - Number(row.rotated_at) <= REFRESH_GRACE_MS) throw clientError("this refresh token was just used by another refresh", 409, "REFRESH_CONFLICT");
					await this.endSessions([found.sid], "reuse", now);
					throw clientError("refresh token was already used: the session has ended", 401, "REFRESH_REUSED");
				}
				const next = `${ctx.params.userId}.${randomBytes(32).toString("base64url")}`;
				await this.db.insertInto("auth_refresh_tokens").values({ hash: hashToken(next), sid: found.sid, user_id: found.user_id, issued_at: now, expires_at: now + REFRESH_TTL_MS, rotated_at: null }).execute();
				await this.db.updateTable("auth_sessions").set({ last_used_at: now }).where("sid", "=", found.sid).execute();
				return this.issue(found.user_id, found.sid, found.client, next);
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
			visibility: "public",
			home: "userId",
			params: { $$strict: true, userId, sid: sessionId },
			/** Another user's session is not found, exactly like one that never existed. */
			async handler(ctx: Context<{ userId: string; sid: string }>) {
				const row = await this.db.selectFrom("auth_sessions").select("sid").where("sid", "=", ctx.params.sid).where("user_id", "=", ctx.params.userId).executeTakeFirst();
				if (!row) throw clientError("no such session", 404, "SESSION_NOT_FOUND");
				await this.endSessions([row.sid], "logout", Date.now());
				return { ended: true };
			}
		},

		sessions: {
			home: { param: "userId", readonly: true },
			params: { $$strict: true, userId },
			async handler(ctx: Context<{ userId: string }>) {
				const rows = await this.db.selectFrom("auth_sessions").selectAll().where("user_id", "=", ctx.params.userId).where("ended_at", "is", null).orderBy("created_at").execute();
				return rows.map(r => ({ sid: r.sid, client: r.client, createdAt: new Date(Number(r.created_at)).toISOString(), lastUsedAt: new Date(Number(r.last_used_at)).toISOString() }));
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
			async handler(ctx: Context<{ afterId: number }>): Promise<FeedPage> {
				const now = Date.now();
				const rows = await this.db
					.selectFrom("auth_revocations")
					.select(["id", "sid", "expires_at"])
					.where("id", ">", ctx.params.afterId)
					.where("expires_at", ">", now)
					.orderBy("id")
					.limit(FEED_PAGE + 1)
					.execute();
				const more = rows.length > FEED_PAGE;
				return {
					maxId: await this.feedPosition(),
					revocations: rows.slice(0, FEED_PAGE).map(r => ({ id: Number(r.id), sid: r.sid, exp: Number(r.expires_at) })),
					more,
					keys: this.current.published as unknown as Record<string, unknown>[],
					keysVersion: this.current.version
				};
			}
		},

		stats: {
			params: { $$strict: true },
			handler() {
				const regions = this.runtime.regions.map(r => r.id);
				return { region: this.runtime.region.id, revoked: this.feed.size, current: Object.fromEntries(regions.map(r => [r, this.feed.current(r)])), keys: this.ring.jwks().keys.map(k => k.kid), signing: this.current.signer?.kid };
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
				this.feed.beat(ctx.params);
			}
		}
	},

	methods: {
		tokenSettings() {
			return { issuer: this.settings.issuer, audience: this.settings.audience };
		},

		async issue(user, session, cli, refresh) {
			const signer = this.current.signer;
			if (!signer) throw new Errors.MoleculerError("no signing key yet", 503, "AUTH_UNAVAILABLE");
			const home = await this.runtime.directory.home(user);
			const accessToken = await signAccess(this.tokenSettings(), signer, { sub: user, rgn: this.runtime.region.id, ep: home?.epoch ?? 0, cli, sid: session });
			return { accessToken, refreshToken: refresh, tokenType: "Bearer", expiresIn: ACCESS_TTL_S, region: this.runtime.region.id, userId: user, sid: session };
		},

		/** One live session per user and client type: opening one ends the previous one of that type. */
		async openSession(user, cli) {
			const now = Date.now();
			const session = randomUUID();
			const refresh = `${user}.${randomBytes(32).toString("base64url")}`;
			const activeKey = `${user}:${cli}`;
			for (let attempt = 1; ; attempt++) {
				const replaced = await this.db.selectFrom("auth_sessions").select("sid").where("active_key", "=", activeKey).execute();
				if (replaced.length) await this.endSessions(replaced.map(r => r.sid), "replaced", now);
				try {
					await this.db.transaction().execute(async trx => {
						await trx.insertInto("auth_sessions").values({ sid: session, user_id: user, client: cli, active_key: activeKey, created_at: now, last_used_at: now, ended_at: null, end_reason: null }).execute();
						await trx.insertInto("auth_refresh_tokens").values({ hash: hashToken(refresh), sid: session, user_id: user, issued_at: now, expires_at: now + REFRESH_TTL_MS, rotated_at: null }).execute();
					});
					break;
				} catch (err) {
					// A concurrent login of the same client type took the slot: end that one too, once.
					if (attempt >= 2 || !(await this.db.selectFrom("auth_sessions").select("sid").where("active_key", "=", activeKey).executeTakeFirst())) throw err;
				}
			}
			return this.issue(user, session, cli, refresh);
		},

		/** Ends sessions, records them in the region's feed and tells every node of every region. */
		async endSessions(sids, reason, now) {
			const exp = now + REVOCATION_TTL_MS;
			await this.db.transaction().execute(async trx => {
				await trx.updateTable("auth_sessions").set({ ended_at: now, end_reason: reason, active_key: null }).where("sid", "in", sids).where("ended_at", "is", null).execute();
				await trx.insertInto("auth_revocations").values(sids.map((s: string) => ({ sid: s, expires_at: exp, created_at: now }))).execute();
			});
			await this.broker.broadcast("auth-jwt.revoked", { sids, exp });
		},

		async refreshKeys() {
			await this.keys.tick();
			this.current = await this.keys.load();
			this.ring.setRegion(this.runtime.region.id, this.current.published as unknown as Record<string, unknown>[]);
		},

		/** The region's feed position: its newest revocation id (0 while there is none). */
		async feedPosition() {
			const row = await this.db.selectFrom("auth_revocations").select(eb => eb.fn.max("id").as("max")).executeTakeFirst();
			return Number(row?.max ?? 0);
		},

		async beat() {
			const beat: FeedBeat = { region: this.runtime.region.id, maxId: await this.feedPosition(), keys: this.current.version };
			await this.broker.broadcast("auth-jwt.feed", beat);
		},

		pull(region, afterId) {
			return this.runtime.call<FeedPage>(region, "auth-jwt.feedSince", { afterId }, { timeout: 2000 });
		},

		/**
		 * A client sends the same token for its whole 15 minutes: its signature is checked once per
		 * node, and the cached result is used only while the token is unexpired and its key still
		 * trusted. The user's home and the session's revocation state are checked on every call.
		 */
		verifyToken(raw, expected) {
			const claims = this.verified.peek(raw);
			if (claims && claims.exp * 1000 > Date.now() && this.ring.keys.has(claims.kid)) return this.fromHome(claims, expected);
			if (claims) this.verified.delete(raw);
			return verifyAccess(this.tokenSettings(), this.ring.keys, raw).then(
				fresh => {
					this.verified.set(raw, fresh);
					return this.fromHome(fresh, expected);
				},
				err => {
					if (err instanceof TokenError) throw clientError(err.message, 401, err.code);
					throw err;
				}
			);
		},

		/**
		 * Only the user's home signs the user's tokens: `rgn` (the signing key's region) must be where
		 * the directory says the user lives, or one region's key could sign for another region's
		 * users by naming itself. A token from before a move is refused; the client refreshes.
		 */
		fromHome(claims, expected) {
			if (this.runtime.directory.cached(claims.sub)?.region === claims.rgn) return this.acceptClaims(claims, expected);
			const refused = () => clientError("token was not signed by the user's home region", 401, "TOKEN_REGION");
			return (async () => {
				// This node's view first, then the origin (a move this node has not heard of yet).
				if ((await this.runtime.directory.home(claims.sub))?.region !== claims.rgn && (await this.runtime.directory.refresh(claims.sub))?.region !== claims.rgn) throw refused();
				return this.acceptClaims(claims, expected);
			})();
		},

		/** Verified claims are accepted for this client type while their session is not revoked (and that is known). */
		acceptClaims(claims, expected) {
			if (expected && claims.cli !== expected) throw clientError(`token belongs to another client type`, 401, "TOKEN_CLIENT");
			const state = this.feed.check(claims.rgn, claims.sid);
			if (state === "stale") throw new Errors.MoleculerRetryableError(`sessions of region ${claims.rgn} cannot be confirmed right now`, 503, "AUTH_UNAVAILABLE", { retryAfter: 2 });
			if (state === "revoked") throw clientError("session has ended", 401, "SESSION_REVOKED");
			return claims;
		},

		/** The openid's user, registered on its first login; of concurrent first logins exactly one registers. */
		async wxUser(ctx: Context, openid: string) {
			for (let attempt = 1; ; attempt++) {
				const found = await ctx.call<{ userId: string }, unknown>("sv-region.resolve", { kind: "wechat", value: openid }).catch((err: { type?: string }) => {
					if (err.type === "USER_NOT_FOUND") return undefined;
					throw err;
				});
				if (found) return { userId: found.userId, created: false };
				let pending = this.registering.get(openid);
				const mine = !pending;
				if (!pending) {
					pending = ctx.call<{ id: string }, unknown>("sv-user.registerWechat", { openid }).then(u => u.id).finally(() => this.registering.delete(openid));
					this.registering.set(openid, pending);
				}
				try {
					return { userId: await pending, created: mine };
				} catch (err) {
					// Another node registered this openid first (the directory lets exactly one): log that user in.
					if ((err as { type?: string }).type !== "WECHAT_TAKEN" || attempt >= 2) throw err;
				}
			}
		},

		/** Until the registering login has written the user's home entry and row, its home answers USER_NOT_FOUND. */
		async wxSession(ctx: Context, user: string) {
			const deadline = Date.now() + WX_SETTLE_MS;
			for (let wait = 50; ; wait *= 2) {
				try {
					return await ctx.call<Tokens, unknown>("auth-jwt.openSession", { userId: user, client: "wx" });
				} catch (err) {
					if ((err as { type?: string }).type !== "USER_NOT_FOUND" || Date.now() + wait > deadline) throw err;
					await new Promise(r => setTimeout(r, wait));
				}
			}
		},

		async moveExport(user) {
			const sessions = await this.db.selectFrom("auth_sessions").selectAll().where("user_id", "=", user).execute();
			const tokens = await this.db.selectFrom("auth_refresh_tokens").selectAll().where("user_id", "=", user).execute();
			return [...sessions.map(r => ({ table: "auth_sessions", row: r })), ...tokens.map(r => ({ table: "auth_refresh_tokens", row: r }))];
		},
		async moveImport(user, rows) {
			const items = rows as { table: "auth_sessions" | "auth_refresh_tokens"; row: Record<string, unknown> }[];
			await this.db.transaction().execute(async trx => {
				await trx.deleteFrom("auth_refresh_tokens").where("user_id", "=", user).execute();
				await trx.deleteFrom("auth_sessions").where("user_id", "=", user).execute();
				for (const table of ["auth_sessions", "auth_refresh_tokens"] as const) {
					const values = items.filter(i => i.table === table).map(i => ({ ...i.row, user_id: user }));
					if (values.length) await trx.insertInto(table).values(values as never).execute();
				}
			});
		},
		async moveCount(user) {
			const count = async (table: "auth_sessions" | "auth_refresh_tokens") =>
				Number((await this.db.selectFrom(table).select(eb => eb.fn.countAll().as("n")).where("user_id", "=", user).executeTakeFirst())?.n ?? 0);
			return (await count("auth_sessions")) + (await count("auth_refresh_tokens"));
		},
		async moveDelete(user) {
			const tokens = await this.db.deleteFrom("auth_refresh_tokens").where("user_id", "=", user).executeTakeFirst();
			const sessions = await this.db.deleteFrom("auth_sessions").where("user_id", "=", user).executeTakeFirst();
			return Number(tokens.numDeletedRows) + Number(sessions.numDeletedRows);
		}
	},

	created() {
		this.sealing = piiKeysFromEnv(process.env, "seal signing keys at rest");
		this.runtime = regionRuntimeOf(this.broker);
		this.ring = new KeyRing();
		this.verified = new Lru<VerifiedAccess>(this.settings.verifiedCacheSize);
		this.timers = [];
		this.registering = new Map();
		this.feed = new RevocationFeed({
			pull: (region, afterId) => this.pull(region, afterId),
			onKeys: (region, keys) => {
				if (region !== this.runtime.region.id) this.ring.setRegion(region, keys);
			},
			staleMs: this.settings.feedStaleMs,
			onError: (region, err) => this.logger.warn(`revocation feed of ${region} could not be read: ${err.message}`)
		});
	},

	async started() {
		const redis = this.runtime.stores.redis;
		this.gate = redis ? new LoginGate(new RedisLoginThrottle(redis), new RedisKnownIps(redis), this.sealing.loginThrottle) : new LoginGate(new MemoryLoginThrottle(), new MemoryKnownIps(), this.sealing.loginThrottle);
		this.keys = new SigningKeys(this.db, this.runtime.region.id, this.sealing, {
			rotateAfterMs: this.settings.rotateAfterMs,
			publishLeadMs: this.settings.publishLeadMs,
			retireAfterMs: this.settings.retireAfterMs
		});
		await this.refreshKeys();
		const every = (ms: number, job: () => Promise<void>, what: string) => {
			const timer = setInterval(() => void job().catch(err => this.logger.warn(`${what} failed: ${(err as Error).message}`)), ms);
			timer.unref();
			this.timers.push(timer);
		};
		every(this.settings.feedIntervalMs, () => this.beat(), "feed beat");
		every(Math.max(1000, this.settings.feedIntervalMs * 10), () => this.refreshKeys(), "key rotation");
		every(60_000, async () => {
			const now = Date.now();
			this.feed.prune(now);
			// The newest row stays, so the feed position never goes back after a sweep.
			await this.db.deleteFrom("auth_revocations").where("expires_at", "<", now).where("id", "<", await this.feedPosition()).execute();
			await this.db.deleteFrom("auth_refresh_tokens").where("expires_at", "<", now).execute();
		}, "expiry sweep");
		await this.beat();
	},

	stopped() {
		for (const t of this.timers) clearInterval(t);
	}
};

export default authJwt;
