import type { Generated, Kysely, Transaction } from "kysely";
import type { FeedBeat, FeedPage } from "./revocation-feed.ts";
import type { KeySet } from "./signing-keys.ts";
import { ACCESS_TTL_S, CLOCK_TOLERANCE_S } from "./tokens.ts";

/** A revoked session matters until the last access token it got has expired. */
export const REVOCATION_TTL_MS = (ACCESS_TTL_S + CLOCK_TOLERANCE_S) * 1000;
/** Most revocations one pull of the feed carries. */
const FEED_PAGE = 5000;

interface RevocationRow {
	/** Assigned by the store, in order: the feed position. */
	id: Generated<number>;
	sid: string;
	expires_at: number;
	created_at: number;
}

export interface FeedTables {
	auth_revocations: RevocationRow;
}

/** The region's public keys as the feed carries them, and their version. */
type PublishedKeys = Pick<KeySet, "published" | "version">;

/**
 * This region's side of the revocation feed (revocation-feed.ts is every node's view of all
 * regions): the stored revocations, read by page by nodes that missed some, and the beat that
 * announces the feed's position and key version a few times a second.
 */
export class FeedPublisher {
	private readonly db: Kysely<FeedTables>;
	private readonly region: string;
	private readonly broadcast: (beat: FeedBeat) => Promise<unknown>;

	constructor(db: Kysely<any>, region: string, broadcast: (beat: FeedBeat) => Promise<unknown>) {
		this.db = db;
		this.region = region;
		this.broadcast = broadcast;
	}

	/** Records ended sessions, inside the transaction that ends them; valid until `exp`. */
	static async record(trx: Transaction<any>, sids: string[], exp: number, now: number): Promise<void> {
		await (trx as Transaction<FeedTables>)
			.insertInto("auth_revocations")
			.values(sids.map(sid => ({ sid, expires_at: exp, created_at: now })))
			.execute();
	}

	/** The feed position: its newest revocation id (0 while there is none). */
	async position(): Promise<number> {
		const row = await this.db
			.selectFrom("auth_revocations")
			.select(eb => eb.fn.max("id").as("max"))
			.executeTakeFirst();
		return Number(row?.max ?? 0);
	}

	/** Announces the feed's position and key version; resolves with the beat sent. */
	async beat(keys: PublishedKeys): Promise<FeedBeat> {
		const beat = { region: this.region, maxId: await this.position(), keys: keys.version };
		await this.broadcast(beat);
		return beat;
	}

	/** The unexpired revocations after `afterId` (-1: all of them), one page at a time, with the region's keys. */
	async page(afterId: number, keys: PublishedKeys, now = Date.now()): Promise<FeedPage> {
		const rows = await this.db
			.selectFrom("auth_revocations")
			.select(["id", "sid", "expires_at"])
			.where("id", ">", afterId)
			.where("expires_at", ">", now)
			.orderBy("id")
			.limit(FEED_PAGE + 1)
			.execute();
		return {
			maxId: await this.position(),
			revocations: rows.slice(0, FEED_PAGE).map(r => ({ id: Number(r.id), sid: r.sid, exp: Number(r.expires_at) })),
			more: rows.length > FEED_PAGE,
			keys: keys.published as unknown as Record<string, unknown>[],
			keysVersion: keys.version
		};
	}

	/** Drops expired revocations; the newest row stays, so the feed position never goes back after a sweep. */
	async prune(now: number): Promise<void> {
		await this.db
			.deleteFrom("auth_revocations")
			.where("expires_at", "<", now)
			.where("id", "<", await this.position())
			.execute();
	}
}
