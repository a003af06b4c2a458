import { createHash, randomBytes, randomUUID } from "node:crypto";
import type { Kysely } from "kysely";
import type { ClientType } from "../../regions/region.ts";
import { RefreshConflictError, RefreshInvalidError, RefreshReusedError, SessionNotFoundError } from "./errors.ts";
import type { FeedTables } from "./feed-publisher.ts";
import { FeedPublisher, REVOCATION_TTL_MS } from "./feed-publisher.ts";

/** Refresh tokens live 30 days; a token spent this recently is a concurrent refresh, not a theft. */
export const REFRESH_TTL_MS = 30 * 24 * 3600_000;
export const REFRESH_GRACE_MS = 5000;
/** `<userId>.<secret>`: the user id lets any region route the refresh to the user's home. */
export const REFRESH_TOKEN = /^([0-9a-z]{26})\.([A-Za-z0-9_-]{43})$/;

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

interface SessionTables extends FeedTables {
	auth_sessions: SessionRow;
	auth_refresh_tokens: RefreshRow;
}

/** A user's rows, as a move carries them. */
type MovedRow = { table: "auth_sessions" | "auth_refresh_tokens"; row: Record<string, unknown> };

/** A live session and the refresh token just issued for it. */
export interface OpenedSession {
	userId: string;
	sid: string;
	client: ClientType;
	refreshToken: string;
}

const hashToken = (t: string) => createHash("sha256").update(t).digest("base64url");
const newRefreshToken = (user: string) => `${user}.${randomBytes(32).toString("base64url")}`;

/**
 * Sessions and their refresh tokens in the home region's SQL store. One live session per user
 * and client type; refresh tokens are stored hashed and rotate on every use, and a replayed one
 * ends its session. Ended sessions go into the region's revocation feed in the same transaction;
 * `onEnded` tells every node at once.
 */
export class SessionStore {
	private readonly db: Kysely<SessionTables>;
	private readonly onEnded: (sids: string[], exp: number) => Promise<unknown>;

	constructor(db: Kysely<any>, onEnded: (sids: string[], exp: number) => Promise<unknown>) {
		this.db = db;
		this.onEnded = onEnded;
	}

	/** Opening a session ends the user's previous one of that client type. */
	async open(user: string, client: ClientType, now = Date.now()): Promise<OpenedSession> {
		const sid = randomUUID();
		const refreshToken = newRefreshToken(user);
		const activeKey = `${user}:${client}`;
		for (let attempt = 1; ; attempt++) {
			const replaced = await this.db.selectFrom("auth_sessions").select("sid").where("active_key", "=", activeKey).execute();
			if (replaced.length)
				await this.end(
					replaced.map(r => r.sid),
					"replaced",
					now
				);
			try {
				await this.db.transaction().execute(async trx => {
					await trx
						.insertInto("auth_sessions")
						.values({ sid, user_id: user, client, active_key: activeKey, created_at: now, last_used_at: now, ended_at: null, end_reason: null })
						.execute();
					await trx
						.insertInto("auth_refresh_tokens")
						.values({ hash: hashToken(refreshToken), sid, user_id: user, issued_at: now, expires_at: now + REFRESH_TTL_MS, rotated_at: null })
						.execute();
				});
				return { userId: user, sid, client, refreshToken };
			} catch (err) {
				// A concurrent login of the same client type took the slot: end that one too, once.
				if (attempt >= 2 || !(await this.db.selectFrom("auth_sessions").select("sid").where("active_key", "=", activeKey).executeTakeFirst())) throw err;
			}
		}
	}

	/**
	 * Spends the token (one conditional update: of two concurrent refreshes exactly one wins) and
	 * issues the next one of the same session. A token spent more than the grace window ago is a
	 * replay: the whole session (the token family) ends. `client`: a token of another client type
	 * is refused, not spent.
	 */
	async rotate(user: string, refreshToken: string, client: ClientType | undefined, now = Date.now()): Promise<OpenedSession> {
		const hash = hashToken(refreshToken);
		const found = await this.db
			.selectFrom("auth_refresh_tokens")
			.innerJoin("auth_sessions", "auth_sessions.sid", "auth_refresh_tokens.sid")
			.select(["auth_refresh_tokens.sid", "auth_refresh_tokens.user_id", "auth_sessions.client", "auth_sessions.ended_at"])
			.where("auth_refresh_tokens.hash", "=", hash)
			.where("auth_refresh_tokens.user_id", "=", user)
			.executeTakeFirst();
		// Checked before anything is spent: a token shown at the wrong gateway stays usable at its own.
		if (!found || found.ended_at !== null || (client && found.client !== client)) throw new RefreshInvalidError();
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
			if (!row || row.rotated_at === null || Number(row.expires_at) <= now) throw new RefreshInvalidError();
			if (now - Number(row.rotated_at) <= REFRESH_GRACE_MS) throw new RefreshConflictError();
			await this.end([found.sid], "reuse", now);
			throw new RefreshReusedError();
		}
		const next = newRefreshToken(user);
		await this.db
			.insertInto("auth_refresh_tokens")
			.values({ hash: hashToken(next), sid: found.sid, user_id: found.user_id, issued_at: now, expires_at: now + REFRESH_TTL_MS, rotated_at: null })
			.execute();
		await this.db.updateTable("auth_sessions").set({ last_used_at: now }).where("sid", "=", found.sid).execute();
		return { userId: found.user_id, sid: found.sid, client: found.client, refreshToken: next };
	}

	/** Ends one of the user's sessions; another user's session is not found, exactly like one that never existed. */
	async endOwn(user: string, sid: string, reason: string, now = Date.now()): Promise<void> {
		const row = await this.db.selectFrom("auth_sessions").select("sid").where("sid", "=", sid).where("user_id", "=", user).executeTakeFirst();
		if (!row) throw new SessionNotFoundError();
		await this.end([row.sid], reason, now);
	}

	/** Ends sessions and records them in the region's revocation feed, then tells every node. */
	async end(sids: string[], reason: string, now: number): Promise<void> {
		const exp = now + REVOCATION_TTL_MS;
		await this.db.transaction().execute(async trx => {
			await trx
				.updateTable("auth_sessions")
				.set({ ended_at: now, end_reason: reason, active_key: null })
				.where("sid", "in", sids)
				.where("ended_at", "is", null)
				.execute();
			await FeedPublisher.record(trx, sids, exp, now);
		});
		await this.onEnded(sids, exp);
	}

	/** The user's live sessions, oldest first. */
	async list(user: string): Promise<{ sid: string; client: ClientType; createdAt: string; lastUsedAt: string }[]> {
		const rows = await this.db
			.selectFrom("auth_sessions")
			.selectAll()
			.where("user_id", "=", user)
			.where("ended_at", "is", null)
			.orderBy("created_at")
			.execute();
		return rows.map(r => ({
			sid: r.sid,
			client: r.client,
			createdAt: new Date(Number(r.created_at)).toISOString(),
			lastUsedAt: new Date(Number(r.last_used_at)).toISOString()
		}));
	}

	async pruneRefreshTokens(now: number): Promise<void> {
		await this.db.deleteFrom("auth_refresh_tokens").where("expires_at", "<", now).execute();
	}

	/** A move: the user's sessions and refresh tokens, as rows. */
	async exportUser(user: string): Promise<MovedRow[]> {
		const sessions = await this.db.selectFrom("auth_sessions").selectAll().where("user_id", "=", user).execute();
		const tokens = await this.db.selectFrom("auth_refresh_tokens").selectAll().where("user_id", "=", user).execute();
		return [
			...sessions.map(row => ({ table: "auth_sessions" as const, row: { ...row } })),
			...tokens.map(row => ({ table: "auth_refresh_tokens" as const, row: { ...row } }))
		];
	}

	async importUser(user: string, rows: unknown[]): Promise<void> {
		const items = rows as MovedRow[];
		await this.db.transaction().execute(async trx => {
			await trx.deleteFrom("auth_refresh_tokens").where("user_id", "=", user).execute();
			await trx.deleteFrom("auth_sessions").where("user_id", "=", user).execute();
			for (const table of ["auth_sessions", "auth_refresh_tokens"] as const) {
				const values = items.filter(i => i.table === table).map(i => ({ ...i.row, user_id: user }));
				if (values.length)
					await trx
						.insertInto(table)
						.values(values as never)
						.execute();
			}
		});
	}

	async countUser(user: string): Promise<number> {
		const count = async (table: "auth_sessions" | "auth_refresh_tokens") =>
			Number(
				(
					await this.db
						.selectFrom(table)
						.select(eb => eb.fn.countAll().as("n"))
						.where("user_id", "=", user)
						.executeTakeFirst()
				)?.n ?? 0
			);
		return (await count("auth_sessions")) + (await count("auth_refresh_tokens"));
	}

	async deleteUser(user: string): Promise<number> {
		const tokens = await this.db.deleteFrom("auth_refresh_tokens").where("user_id", "=", user).executeTakeFirst();
		const sessions = await this.db.deleteFrom("auth_sessions").where("user_id", "=", user).executeTakeFirst();
		return Number(tokens.numDeletedRows) + Number(sessions.numDeletedRows);
	}
}
