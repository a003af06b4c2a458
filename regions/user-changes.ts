import type { Context, Middleware, ServiceBroker } from "moleculer";
import { paramAt, parseSpec } from "./home-router.ts";

/** Broadcast to every node of every region (listeners declare `global: true`): these users' data changed. */
export const USERS_CHANGED = "region.users-changed";

export interface UsersChanged {
	users: string[];
}

const ALSO_CHANGED = Symbol("users the write also changed");

/** Names another user whose data the running write changed (a payee credited by the payer's write): announced with the write's own user. */
export function alsoChanged(ctx: Context, userId: string): void {
	const locals = ctx.locals as Record<symbol, Set<string> | undefined>;
	(locals[ALSO_CHANGED] ??= new Set()).add(userId);
}

export interface UserChangesOptions {
	/** Most users in one broadcast; more go in another (default 500). */
	maxUsers?: number;
}

/**
 * Tells caches of users' reads, wherever they are, that a user's data changed. A home-routed
 * write notes its user once it settled (outermost, so after its commit; a failed write too: it
 * may have committed part). The notes go out in a microtask: before the write's own answer is
 * sent (so a caller of this region that reads next finds its cache already told), and together
 * for every write that settled at once (a committed batch costs one broadcast).
 */
export function UserChanges(opts: UserChangesOptions = {}): Middleware {
	const maxUsers = opts.maxUsers ?? 500;
	let broker: ServiceBroker;
	let pending = new Set<string>();
	let flushing: Promise<void> | undefined;

	function flush(): void {
		flushing = undefined;
		const users = [...pending];
		pending = new Set();
		for (let i = 0; i < users.length; i += maxUsers) {
			try {
				void Promise.resolve(broker.broadcast(USERS_CHANGED, { users: users.slice(i, i + maxUsers) } satisfies UsersChanged)).catch(warn);
			} catch (err) {
				warn(err);
			}
		}
	}

	function warn(err: unknown): void {
		broker.logger.warn(`users-changed broadcast failed: ${(err as Error).message}`);
	}

	/** Settles once the broadcast naming `userId` was handed to the transport. */
	function changed(userId: string): Promise<void> {
		pending.add(userId);
		flushing ??= Promise.resolve().then(flush);
		return flushing;
	}

	return {
		name: "UserChanges",
		created(b: ServiceBroker) {
			broker = b;
		},
		localAction(next: (ctx: Context) => Promise<unknown>, action: { home?: unknown }) {
			const spec = parseSpec(action.home);
			if (!spec?.write || spec.byRegion) return next;
			return (ctx: Context) => {
				const userId = paramAt(ctx.params, spec.path);
				if (userId === undefined) return next(ctx);
				const announce = () => {
					for (const other of (ctx.locals as Record<symbol, Set<string> | undefined>)[ALSO_CHANGED] ?? []) changed(other);
					return changed(userId);
				};
				return next(ctx).then(
					value => announce().then(() => value),
					err => announce().then(() => Promise.reject(err))
				);
			};
		}
	} as unknown as Middleware;
}
