import { blindIndex } from "./blind-index.ts";
import type { HomeEntry, IdentityEntry, IdentityKind } from "./entries.ts";
import { identityKey, USER_PREFIX, userKey } from "./entries.ts";
import { HomeCache } from "./home-cache.ts";
import type { DirectoryChange, DirectoryEntry, DirectoryStore, DirectoryWatch } from "./store.ts";
import { DirectoryError } from "./store.ts";

const AUTHORITATIVE = { authoritative: true } as const;
/** Users remembered as read ahead of the feed. */
const MAX_AHEAD = 10_000;

export interface Identity {
	kind: IdentityKind;
	value: string;
}

export interface HomeDirectoryOptions {
	store: DirectoryStore;
	/** Every region id, in a stable order (the cache packs an index into it). */
	regions: string[];
	blindIndexKey: Buffer;
	cacheSize?: number;
	/** Whether the origin can commit writes now (the node's global probe): identities are then resolved there. */
	originAvailable?: () => boolean;
}

/**
 * A node's view of the directory: lookups answered from a bounded cache filled on demand and
 * kept current by the store's change feed, plus the writes registration and moves need.
 */
export class HomeDirectory {
	readonly store: DirectoryStore;
	readonly cache: HomeCache;
	private readonly key: Buffer;
	private readonly originAvailable: () => boolean;
	private watch: DirectoryWatch | undefined;
	/**
	 * Users being read past the cache, with the newest revision the feed reported meanwhile: a read
	 * older than that must not be cached, or the change it missed would be lost until the next one.
	 */
	private readonly filling = new Map<string, { readers: number; revision: number }>();
	private readonly listeners = new Set<{ prefix: string; listener: (change: DirectoryChange) => void }>();
	/** The last revision the change feed delivered. */
	private feedRevision = 0;
	/** Users read from the origin at a revision the feed has not reached yet. */
	private readonly ahead = new Map<string, number>();
	lookups = 0;

	constructor(opts: HomeDirectoryOptions) {
		this.store = opts.store;
		this.key = opts.blindIndexKey;
		this.cache = new HomeCache(opts.regions, opts.cacheSize);
		this.originAvailable = opts.originAvailable ?? (() => false);
	}

	/** Subscribes to the change feed; until then nothing is cached, so nothing can go stale. */
	async start(): Promise<void> {
		this.watch = await this.store.watch<HomeEntry>(change => this.onChange(change));
	}

	async stop(): Promise<void> {
		await this.watch?.stop();
		this.watch = undefined;
		this.cache.clear();
	}

	/**
	 * Hears every change to keys under `prefix` other than users' (moves, say) on this node's one
	 * change feed, once the directory has started; returns the unsubscribe.
	 */
	listen(prefix: string, listener: (change: DirectoryChange) => void): () => void {
		const entry = { prefix, listener };
		this.listeners.add(entry);
		return () => this.listeners.delete(entry);
	}

	/** Whether the change feed runs: `listen` hears nothing before. */
	get watching(): boolean {
		return this.watch !== undefined;
	}

	private onChange(change: DirectoryChange<HomeEntry>): void {
		this.feedRevision = change.revision;
		for (const { prefix, listener } of this.listeners) if (change.key.startsWith(prefix)) listener(change);
		if (!change.key.startsWith(USER_PREFIX)) return;
		const userId = change.key.slice(USER_PREFIX.length);
		if (this.ahead.size) {
			const known = this.ahead.get(userId);
			if (known !== undefined && change.revision < known) return;
			// The feed is in revision order: once it passes a read, that read can no longer be undone.
			for (const [user, revision] of this.ahead) if (revision <= change.revision) this.ahead.delete(user);
		}
		const fill = this.filling.get(userId);
		if (fill) fill.revision = Math.max(fill.revision, change.revision);
		// Only refresh what this node already holds: the feed must not fill the cache with every user.
		if (!this.cache.has(userId)) return;
		if (change.value) this.cache.set(userId, change.value);
		else this.cache.delete(userId);
	}

	/** Where `userId` lives, or undefined for a user the directory does not know. */
	async home(userId: string): Promise<HomeEntry | undefined> {
		return this.cached(userId) ?? this.load(userId, false);
	}

	/** A lookup answered from the cache alone, without waiting: undefined on a miss (then use `home`). */
	cached(userId: string): HomeEntry | undefined {
		this.lookups++;
		return this.cache.get(userId);
	}

	/**
	 * Reads the origin past the cache and mirror, and re-fills the cache: how a node heals after a
	 * WRONG_REGION answer. While the origin cannot answer, the local copy is the best there is;
	 * routing on it may cost a retry, never a misplaced write (the home's fence decides those).
	 */
	async refresh(userId: string): Promise<HomeEntry | undefined> {
		try {
			return await this.load(userId, true);
		} catch (err) {
			if (!(err instanceof DirectoryError && err.code === "DIRECTORY_UNAVAILABLE")) throw err;
			return this.load(userId, false);
		}
	}

	private async load(userId: string, authoritative: boolean): Promise<HomeEntry | undefined> {
		const opts = { authoritative };
		if (!this.watch) return (await this.store.get<HomeEntry>(userKey(userId), opts))?.value;
		let fill = this.filling.get(userId);
		if (!fill) this.filling.set(userId, (fill = { readers: 0, revision: 0 }));
		fill.readers++;
		try {
			const entry = await this.store.get<HomeEntry>(userKey(userId), opts);
			const ahead = this.ahead.get(userId) ?? 0;
			if (entry && entry.revision >= fill.revision && entry.revision >= ahead) {
				this.cache.set(userId, entry.value);
				// The origin may be ahead of this node's feed: the feed's older news must not undo this read.
				if (entry.revision > this.feedRevision) this.remember(userId, entry.revision);
				return entry.value;
			}
			// Older than what this node read from the origin: keep that.
			if (entry && entry.revision < ahead) return this.cache.peek(userId) ?? entry.value;
			this.cache.delete(userId);
			return entry?.value;
		} finally {
			if (--fill.readers === 0) this.filling.delete(userId);
		}
	}

	/**
	 * Takes a change the origin confirmed at `revision` (a move's flip, announced by its mover)
	 * before this node's feed brings it: a mirror that lags or stalls then costs no stale answer.
	 */
	learn(userId: string, home: HomeEntry, revision: number): void {
		if (revision <= this.feedRevision || revision <= (this.ahead.get(userId) ?? 0)) return;
		this.cache.set(userId, home);
		this.remember(userId, revision);
	}

	private remember(userId: string, revision: number): void {
		this.ahead.delete(userId);
		this.ahead.set(userId, revision);
		// A stalled feed must not grow this without bound: forgetting costs a retry, not safety.
		if (this.ahead.size > MAX_AHEAD) this.ahead.delete(this.ahead.keys().next().value!);
	}

	/** The directory entry with its revision, read from the origin: for compare-and-set. */
	entry(userId: string): Promise<DirectoryEntry<HomeEntry> | undefined> {
		return this.store.get<HomeEntry>(userKey(userId), AUTHORITATIVE);
	}

	blind(identity: Identity): string {
		return blindIndex(this.key, identity.kind, identity.value);
	}

	/**
	 * The user an identity names. A login right after its registration must find it, and this
	 * region's mirror may not have it yet: while the origin can commit, both are asked, for every
	 * identity alike (asking the origin on a miss only would time unknown logins apart from known
	 * ones), and either one's answer counts (a hub server cut off from the stream's leader can say
	 * "not found" for a key it holds). While it cannot, the mirror answers: a region cut off still
	 * logs its users in.
	 */
	async resolve(identity: Identity): Promise<string | undefined> {
		const key = identityKey(identity.kind, this.blind(identity));
		if (!this.originAvailable()) return (await this.store.get<IdentityEntry>(key))?.value.userId;
		const [origin, local] = await Promise.all([
			this.store.get<IdentityEntry>(key, AUTHORITATIVE).catch(err => {
				if (err instanceof DirectoryError && err.code === "DIRECTORY_UNAVAILABLE") return undefined;
				throw err;
			}),
			this.store.get<IdentityEntry>(key)
		]);
		return (origin ?? local)?.value.userId;
	}

	/**
	 * Reserves every identity and creates the user entry, all or nothing: on any failure the
	 * reservations made so far are released before the error is rethrown.
	 */
	async register(userId: string, identities: Identity[], home: HomeEntry): Promise<void> {
		const made = await this.reserve(userId, identities);
		try {
			await this.store.create<HomeEntry>(userKey(userId), home);
		} catch (err) {
			await this.undo(made, err);
		}
	}

	/**
	 * Points every identity at `userId`, all or nothing. One already pointing at this user is kept;
	 * one held by another user fails with KEY_EXISTS naming its kind, once the others are released.
	 */
	async reserve(userId: string, identities: Identity[]): Promise<{ key: string; revision: number }[]> {
		const made: { key: string; revision: number }[] = [];
		for (const identity of identities) {
			const key = identityKey(identity.kind, this.blind(identity));
			try {
				made.push({ key, revision: await this.store.create<IdentityEntry>(key, { userId }) });
			} catch (err) {
				if (err instanceof DirectoryError && err.code === "KEY_EXISTS") {
					if ((await this.store.get<IdentityEntry>(key))?.value.userId === userId) continue;
					await this.undo(made, new DirectoryError("KEY_EXISTS", `${identity.kind} is already taken`, { cause: { kind: identity.kind } }));
				}
				await this.undo(made, err);
			}
		}
		return made;
	}

	/**
	 * Deletes what a failed reservation made and rethrows `err`. A refusal (KEY_EXISTS) promises that
	 * nothing was kept: when a delete fails too, the caller hears that failure instead.
	 */
	private async undo(made: { key: string; revision: number }[], err: unknown): Promise<never> {
		const results = await Promise.allSettled(made.map(m => this.store.delete(m.key, m.revision)));
		const failed = results.find(r => r.status === "rejected");
		if (failed && err instanceof DirectoryError && err.code === "KEY_EXISTS") throw failed.reason;
		throw err;
	}

	/**
	 * Removes the identities that point at `userId`; others' are left alone. Read at the origin (a
	 * lagging mirror would hide a reservation), and idempotent: one gone meanwhile is no error.
	 */
	async release(userId: string, identities: Identity[]): Promise<void> {
		for (const identity of identities) {
			const key = identityKey(identity.kind, this.blind(identity));
			const entry = await this.store.get<IdentityEntry>(key, AUTHORITATIVE);
			if (entry?.value.userId !== userId) continue;
			await this.store.delete(key, entry.revision).catch(async err => {
				const changed = err instanceof DirectoryError && err.code === "REVISION_MISMATCH";
				if (!changed || (await this.store.get<IdentityEntry>(key, AUTHORITATIVE))?.value.userId === userId) throw err;
			});
		}
	}
}
