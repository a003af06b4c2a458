/** What every auth-jwt node of a region announces a few times a second. */
export interface FeedBeat {
	region: string;
	/** Highest revocation id in the region's feed (0 when empty). */
	maxId: number;
	/** Changes whenever the region's published keys change. */
	keys: string;
}

export interface Revocation {
	id: number;
	sid: string;
	/** Until when (ms) a token of the session could still be presented. */
	exp: number;
}

/** One page of a region's feed after an id, with the region's public keys. */
export interface FeedPage {
	maxId: number;
	revocations: Revocation[];
	more: boolean;
	keys: Record<string, unknown>[];
	keysVersion: string;
}

export type FeedCheck = "ok" | "revoked" | "stale";

export interface RevocationFeedOptions {
	/** Reads a region's feed after `afterId` (-1: every unexpired revocation). */
	pull(region: string, afterId: number): Promise<FeedPage>;
	/** A region's public keys, whenever a pull brings a new version of them. */
	onKeys(region: string, keys: Record<string, unknown>[], version: string): void;
	/** No beat from a region for this long: its users' tokens are refused (503). */
	staleMs?: number;
	/** A beat showed revocations we have not pulled for this long: refused too. */
	catchUpMs?: number;
	onError?(region: string, err: Error): void;
}

interface RegionFeed {
	heardAt: number;
	/** Feed position up to which every revocation is known here; -1 before the first pull. */
	synced: number;
	/** Highest position a beat has announced. */
	announced: number;
	/** Since when a beat has announced more than we hold. */
	behindSince: number | undefined;
	keysVersion: string | undefined;
	pulling: boolean;
}

/**
 * A node's local view of which sessions are revoked, fed by every region. Revocations arrive as
 * events (applied at once) and every region's nodes beat with their feed position, so a node that
 * missed an event notices the gap on the next beat and pulls what it lacks. A node that cannot
 * be sure its view of a region is current (no beat for `staleMs`, or behind for `catchUpMs`)
 * says so, and the verifier refuses that region's tokens instead of trusting them.
 */
export class RevocationFeed {
	private readonly opts: Required<Omit<RevocationFeedOptions, "onError">> & Pick<RevocationFeedOptions, "onError">;
	private readonly revoked = new Map<string, number>();
	private readonly regions = new Map<string, RegionFeed>();

	constructor(opts: RevocationFeedOptions) {
		this.opts = { staleMs: 5000, catchUpMs: 1000, ...opts };
	}

	/** A revocation pushed by its region: effective at once. */
	revoke(sid: string, exp: number): void {
		const known = this.revoked.get(sid);
		if (known === undefined || known < exp) this.revoked.set(sid, exp);
	}

	/** A region's beat; resolves when the pull it starts, if any, is done. */
	beat(beat: FeedBeat, now = Date.now()): Promise<void> {
		let feed = this.regions.get(beat.region);
		if (!feed) {
			feed = { heardAt: now, synced: -1, announced: beat.maxId, behindSince: now, keysVersion: undefined, pulling: false };
			this.regions.set(beat.region, feed);
		}
		feed.heardAt = now;
		if (beat.maxId > feed.announced) feed.announced = beat.maxId;
		if (feed.announced > feed.synced && feed.behindSince === undefined) feed.behindSince = now;
		if (feed.synced < 0 || feed.announced > feed.synced || beat.keys !== feed.keysVersion) return this.pull(beat.region, feed);
		return Promise.resolve();
	}

	check(region: string, sid: string, now = Date.now()): FeedCheck {
		const feed = this.regions.get(region);
		if (!feed || feed.synced < 0 || now - feed.heardAt > this.opts.staleMs) return "stale";
		if (feed.behindSince !== undefined && now - feed.behindSince > this.opts.catchUpMs) return "stale";
		const exp = this.revoked.get(sid);
		return exp !== undefined && exp > now ? "revoked" : "ok";
	}

	/** Whether the view of `region` is current now (for readiness and tests). */
	current(region: string, now = Date.now()): boolean {
		return this.check(region, "", now) !== "stale";
	}

	/** Drops revocations whose tokens have all expired. */
	prune(now = Date.now()): void {
		for (const [sid, exp] of this.revoked) if (exp <= now) this.revoked.delete(sid);
	}

	get size(): number {
		return this.revoked.size;
	}

	private async pull(region: string, feed: RegionFeed): Promise<void> {
		if (feed.pulling) return;
		feed.pulling = true;
		try {
			for (;;) {
				const page = await this.opts.pull(region, feed.synced);
				for (const r of page.revocations) this.revoke(r.sid, r.exp);
				if (page.keysVersion !== feed.keysVersion) {
					this.opts.onKeys(region, page.keys, page.keysVersion);
					feed.keysVersion = page.keysVersion;
				}
				const last = page.revocations.at(-1)?.id;
				if (page.more && last !== undefined) {
					feed.synced = Math.max(feed.synced, last);
					continue;
				}
				feed.synced = Math.max(feed.synced, page.maxId);
				if (page.maxId > feed.announced) feed.announced = page.maxId;
				if (feed.synced >= feed.announced) feed.behindSince = undefined;
				return;
			}
		} catch (err) {
			this.opts.onError?.(region, err as Error);
		} finally {
			feed.pulling = false;
		}
	}
}
