import type { CallingOptions, Context, Middleware, ServiceBroker } from "moleculer";
import { Errors } from "moleculer";
import type { HomeEntry } from "./directory/entries.ts";
import type { HomeDirectory } from "./directory/home-directory.ts";
import {
	fromDirectoryFailure,
	OutcomeUnknownError,
	RegionUnavailableError,
	RoutingLoopError,
	UserMovingError,
	UserNotFoundError,
	WrongRegionError
} from "./errors.ts";
import type { RegionLinks } from "./links.ts";
import type { WriteFence } from "./ownership/fence.ts";
import type { RegionHealth } from "./region-health.ts";
import type { BusWatch } from "./runtime/bus-watch.ts";
import { busWatchOf } from "./runtime/bus-watch.ts";
import { METRIC } from "./runtime/metric-names.ts";
import { linkHop, settleHop, settleRouting, withRoutingSpan } from "./runtime/tracing/route-spans.ts";

/**
 * What an action or event declares to be home-routed: the path of the parameter naming the
 * user (`home: "userId"`), or `{ param, readonly | atomic }`. Reads may still be served while the
 * user is moving; writes may not, and commit only through the home region's fence. An `atomic`
 * write commits all of its statements in one transaction, never split off a slow batch
 * (regions/ownership/write-batch.ts): for writes whose statements mean nothing apart. A
 * `selfFenced` write is routed like any write but runs unwrapped: its handler commits only in a
 * transaction that holds the ownership rows of every user it writes (shared), as the fence would,
 * and hands what it cannot decide to the fence (`fence.run`).
 */
export type UserHomeSpec = string | { param: string; readonly?: boolean; atomic?: boolean; selfFenced?: boolean };

/**
 * What an action declares: routed by a user's home, or (`{ region }`, the path of a parameter
 * naming a region id) run in that region, with no user and so no ownership checks there.
 */
export type HomeSpec = UserHomeSpec | { region: string };

/** Routing facts carried in `ctx.meta.$home` from the caller's region to the home region. */
export interface HomeMeta {
	epoch: number;
	originRegion: string;
	hops: number;
}

/** What a node's router did, for `region stats` (and the Prometheus counters when metrics are on). */
export interface RoutingStats {
	local: number;
	forwards: Record<string, number>;
	heals: number;
}

export function newRoutingStats(): RoutingStats {
	return { local: 0, forwards: {}, heals: 0 };
}

export interface HomeRouterOptions {
	region: string;
	directory: HomeDirectory;
	links: RegionLinks;
	/** Reachability of the other regions: a forward to one that is down fails at once. */
	health?: RegionHealth;
	/** A forwarded call may take at most this many hops (first forward + healed retries). */
	maxHops?: number;
	stats?: RoutingStats;
	/** Where a home-routed write commits, only while this region's own ownership row says so. */
	fence: WriteFence;
	/** Every region id, for `home: { region }` actions; default: the regions `health` watches, else this one. */
	regions?: string[];
}

export interface ParsedSpec {
	path: string[];
	write: boolean;
	atomic?: boolean;
	selfFenced?: boolean;
	/** The parameter names a region, not a user. */
	byRegion: boolean;
}

export function parseSpec(spec: unknown): ParsedSpec | undefined {
	if (typeof spec === "string") return { path: spec.split("."), write: true, byRegion: false };
	if (spec && typeof spec === "object" && typeof (spec as { param?: unknown }).param === "string") {
		const s = spec as { param: string; readonly?: boolean; atomic?: boolean; selfFenced?: boolean };
		return { path: s.param.split("."), write: !s.readonly, atomic: Boolean(s.atomic), selfFenced: Boolean(s.selfFenced), byRegion: false };
	}
	if (spec && typeof spec === "object" && typeof (spec as { region?: unknown }).region === "string")
		return { path: (spec as { region: string }).region.split("."), write: false, byRegion: true };
	return undefined;
}

export function paramAt(params: unknown, path: string[]): string | undefined {
	let v: unknown = params;
	for (const p of path) v = v && typeof v === "object" ? (v as Record<string, unknown>)[p] : undefined;
	return typeof v === "string" ? v : undefined;
}

/**
 * Moleculer's broker keeps the context of a call made through a `call` middleware in one variable
 * per middleware chain, set when the middleware calls `next` — and ours calls it only after an
 * awaited lookup, so without this the promise would carry the context of whichever call came
 * before, and `ctx.call` would merge that unrelated call's meta (another request's user!) into the
 * caller's. The promise answers the context of its own inner call (none when forwarded), whatever
 * the broker assigns.
 */
function ownContext<T>(promise: Promise<T>, ctx: () => unknown): Promise<T> {
	Object.defineProperty(promise, "ctx", { get: ctx, set: () => undefined, configurable: true });
	return promise;
}

/** `next`, remembering the context of the call it made last (for `ownContext`). */
function tracking(next: ServiceBroker["call"]): { call: ServiceBroker["call"]; ctx: () => unknown } {
	let inner: { ctx?: unknown } | undefined;
	return {
		call: ((...args: Parameters<ServiceBroker["call"]>) => (inner = next(...args) as { ctx?: unknown })) as ServiceBroker["call"],
		ctx: () => inner?.ctx
	};
}

/** Attempts of one call: the first, then one per WRONG_REGION healed by an authoritative read. */
const MAX_ATTEMPTS = 3;

/** Answers that mean the call may or may not have run: the caller cannot know, and must not retry blindly. */
function outcomeUnknown(err: unknown): boolean {
	const type = (err as { type?: string }).type;
	return type === "REQUEST_TIMEOUT" || type === "REQUEST_REJECTED";
}

/**
 * Runs every call that concerns a user in that user's home region, the way Orleans routes a
 * call to a grain's activation:
 * - caller side (`call` hook): resolve the home (cached), call locally or forward through the
 *   link to the home region; on WRONG_REGION re-read the directory's origin and retry, bounded;
 * - home side (`localAction` hook): a read checks ownership and epoch from the cache (healed from
 *   the origin when they disagree); a write commits through the region's fence, which alone
 *   decides whether this region may write (caches and mirrors only route);
 * - inside the region, calls for one user stick to one node (Shard strategy on the same key).
 */
export function HomeRouter(opts: HomeRouterOptions): Middleware {
	const { region, directory, links, health, fence } = opts;
	const maxHops = opts.maxHops ?? MAX_ATTEMPTS;
	const stats = opts.stats ?? newRoutingStats();
	const regions = new Set(opts.regions ?? (health ? Object.keys(health.all()) : [region]));
	const specs = new Map<string, ParsedSpec | null>();
	let broker: ServiceBroker;
	let bus: BusWatch | undefined;
	/** The directory's answers, its failures in the clients' words. */
	const lookup = (userId: string) => directory.home(userId).catch(fromDirectoryFailure);
	const reread = (userId: string) => directory.refresh(userId).catch(fromDirectoryFailure);

	/** The action's `home:` declaration, from any registry that knows the action: calls for other regions need no local instance. */
	function specOf(actionName: string): ParsedSpec | undefined {
		let spec = specs.get(actionName);
		if (spec === undefined) {
			const declared =
				declaration(broker, actionName) ??
				links
					.registries()
					.map(r => declaration(r, actionName))
					.find(d => d !== undefined);
			// Unknown yet (not discovered): decide on the next call rather than caching "not routed".
			if (declared === undefined) return undefined;
			spec = parseSpec(declared.home) ?? null;
			specs.set(actionName, spec);
		}
		return spec ?? undefined;
	}

	/** Disconnected from the bus with no local instance to run the call: it cannot even be sent. */
	function cutOff(actionName: string): boolean {
		return !connected(broker, bus) && !broker.registry.getActionEndpoints(actionName)?.hasLocal();
	}

	function count(name: string, labels: Record<string, string>): void {
		if (broker.isMetricsEnabled()) broker.metrics.increment(name, labels);
	}

	/**
	 * Runs the call in region `target` through the link. A region known down is refused before
	 * anything is sent; one that goes down with the call in flight fails it at once, and a write
	 * (`writeOf`: its user) then says its outcome is unknown (it may have run there).
	 */
	async function forward(target: string, actionName: string, params: unknown, callOpts: CallingOptions, meta: Record<string, unknown>, writeOf?: string) {
		stats.forwards[target] = (stats.forwards[target] ?? 0) + 1;
		count(METRIC.routingForwards, { to: target });
		// Cut off from the bus: nothing can be sent, so say so now rather than after the timeout.
		if (!connected(broker, bus)) throw new RegionUnavailableError(target, 5, "this node is not connected to its transporter");
		if (health?.status(target) === "down") throw new RegionUnavailableError(target, 5, health.all()[target]?.reason);
		let sent = false;
		try {
			const hop = linkHop(broker.isTracingEnabled(), callOpts, target, actionName, (meta.$home as HomeMeta | undefined)?.hops);
			const call = settleHop(
				hop,
				links.call(target, actionName, params, {
					meta,
					timeout: callOpts.timeout ?? undefined,
					requestID: callOpts.parentCtx?.requestID ?? callOpts.requestID,
					headers: callOpts.headers,
					...hop?.options
				})
			);
			sent = true;
			return await (health ? health.guard(target, call) : call);
		} catch (err) {
			const type = (err as { type?: string }).type;
			if (type === "SERVICE_NOT_AVAILABLE" || type === "SERVICE_NOT_FOUND" || /waiting is timed out|did not connect/i.test((err as Error).message))
				throw new RegionUnavailableError(target, 5, (err as Error).message);
			if (type === "REGION_UNAVAILABLE" && sent && writeOf !== undefined)
				throw new OutcomeUnknownError(writeOf, actionName, `region ${target} went down with the call in flight`);
			throw err;
		}
	}

	/**
	 * The caller side of a user call. The usual case (home cached, in this region) calls `next`
	 * synchronously: no await before it, so the broker pairs the returned promise with its own
	 * context. Every other case sets the promise's context itself (`ownContext`).
	 */
	function route(next: ServiceBroker["call"], actionName: string, params: unknown, callOpts: CallingOptions | undefined, spec: ParsedSpec) {
		const userId = paramAt(params, spec.path);
		// No user named: let the action's own validation answer.
		if (userId === undefined) return next(actionName, params, callOpts);
		const o: CallingOptions = withRoutingSpan(callOpts ?? {}, actionName);
		const cached = directory.cached(userId);
		if (cached?.region === region && !cutOff(actionName)) {
			stats.local++;
			const routed: Promise<unknown> & { ctx?: unknown } = next(actionName, params, withHome(o, cached)).catch(err => {
				if (!healable(err)) throw answerOf(err, userId, actionName);
				return reread(userId).then(home => {
					const tracked = tracking(next);
					const retried = attempt(tracked.call, actionName, params, o, userId, home, 2, spec);
					// Set before `routed` settles, so its caller merges the retried call's meta, or none.
					routed.ctx = tracked.ctx();
					return retried;
				});
			});
			return settleRouting(o, routed, region, () => directory.cached(userId));
		}
		const tracked = tracking(next);
		const routed = cached
			? attempt(tracked.call, actionName, params, o, userId, cached, 1, spec)
			: // Not in this region's view: a user registered a moment ago may not have reached its mirror yet; the origin decides.
				lookup(userId)
					.then(home => home ?? reread(userId))
					.then(home => attempt(tracked.call, actionName, params, o, userId, home, 1, spec));
		return ownContext(
			settleRouting(o, routed, region, () => directory.cached(userId)),
			tracked.ctx
		);
	}

	function homeMeta(home: HomeEntry, hops: number): HomeMeta {
		return { epoch: home.epoch, originRegion: region, hops };
	}

	/** The options of a call in this region: the caller's, with the routing facts added to its meta. */
	function withHome(o: CallingOptions, home: HomeEntry): CallingOptions {
		return { ...o, meta: { ...o.meta, $home: homeMeta(home, 0) } };
	}

	/** WRONG_REGION: our view of the user's home was stale. Counted here, healed by the caller. */
	function healable(err: unknown): boolean {
		if ((err as { type?: string }).type !== "WRONG_REGION") return false;
		stats.heals++;
		count(METRIC.routingHeals, {});
		return true;
	}

	/**
	 * What a caller gets for a failure in this region: a timeout or a node lost mid-call may have
	 * run the call (OUTCOME_UNKNOWN); no live node running the service here sent nothing
	 * (REGION_UNAVAILABLE, retryable). Clients see documented codes only.
	 */
	function answerOf(err: unknown, userId: string, actionName: string): unknown {
		if (outcomeUnknown(err)) return new OutcomeUnknownError(userId, actionName, (err as Error).message);
		const type = (err as { type?: string }).type;
		if (type === "SERVICE_NOT_AVAILABLE" || type === "SERVICE_NOT_FOUND")
			return new RegionUnavailableError(region, 5, `no live node of ${region} runs ${actionName} now`);
		return err;
	}

	/** Attempt `n` (1, or more after heals) to run the call where `home` says the user lives. */
	async function attempt(
		next: ServiceBroker["call"],
		actionName: string,
		params: unknown,
		o: CallingOptions,
		userId: string,
		home: HomeEntry | undefined,
		n: number,
		spec: ParsedSpec
	): Promise<unknown> {
		if (!home) throw new UserNotFoundError(userId);
		try {
			if (home.region === region) {
				if (cutOff(actionName)) throw new RegionUnavailableError(region, 5, "this node is not connected to its transporter");
				stats.local++;
				return await next(actionName, params, withHome(o, home));
			}
			const meta = { ...(o.parentCtx?.meta as Record<string, unknown> | undefined), ...o.meta, $home: homeMeta(home, n) };
			return await forward(home.region, actionName, params, o, meta, spec.write ? userId : undefined);
		} catch (err) {
			// A forward has already named a missing service as its region unavailable.
			if (!healable(err)) throw answerOf(err, userId, actionName);
			// Still stale after the origin was read: the home is changing under us. A documented, retryable answer.
			if (n >= MAX_ATTEMPTS) throw new UserMovingError(userId);
			// Our view was stale: re-read the directory's origin and try again (Orleans' cache invalidation).
			return attempt(next, actionName, params, o, userId, await reread(userId), n + 1, spec);
		}
	}

	/** A `home: { region }` call: run in the named region, locally or through the link like a remote home. */
	async function routeToRegion(next: ServiceBroker["call"], actionName: string, params: unknown, callOpts: CallingOptions | undefined, spec: ParsedSpec) {
		const target = paramAt(params, spec.path);
		// No region named: let the action's own validation answer.
		if (target === undefined) return next(actionName, params, callOpts);
		if (!regions.has(target)) throw new Errors.MoleculerClientError(`unknown region "${target}"`, 422, "UNKNOWN_REGION", { region: target });
		const o: CallingOptions = callOpts ?? {};
		if (target === region) {
			stats.local++;
			return next(actionName, params, o);
		}
		return forward(target, actionName, params, o, { ...(o.parentCtx?.meta as Record<string, unknown> | undefined), ...o.meta });
	}

	/**
	 * The home side of a read: this region must own the user, at least at the caller's epoch. When
	 * the cache disagrees with the caller, the origin decides, so a stale mirror here never sends
	 * a caller away with a wrong answer.
	 */
	async function admitRead(ctx: Context, userId: string, cached: HomeEntry | undefined): Promise<void> {
		const meta = (ctx.meta as { $home?: HomeMeta }).$home;
		let home = cached ?? (await lookup(userId));
		if (!home || home.region !== region || (meta && meta.epoch !== home.epoch)) home = await reread(userId);
		if (!home) throw new UserNotFoundError(userId);
		if (home.region !== region) throw new WrongRegionError(userId, home.region, home.epoch);
		// Fencing: a caller holding an older epoch is told the current one.
		if (meta && meta.epoch < home.epoch) throw new WrongRegionError(userId, home.region, home.epoch);
	}

	return {
		name: "HomeRouter",

		created(b: ServiceBroker) {
			broker = b;
			bus = busWatchOf(b);
			b.localBus.on("$services.changed", () => specs.clear());
		},

		// Calls for one user stick to one node of the home region. A write is never re-sent by the
		// broker's retry policy: if its node was lost mid-call it may have committed (OUTCOME_UNKNOWN).
		serviceCreating(_service: unknown, schema: { actions?: Record<string, unknown> }) {
			for (const action of Object.values(schema.actions ?? {})) {
				if (!action || typeof action !== "object") continue;
				const a = action as { home?: unknown; strategy?: string; strategyOptions?: unknown; retryPolicy?: unknown };
				const spec = parseSpec(a.home);
				if (spec && !spec.byRegion && !a.strategy) {
					a.strategy = "Shard";
					a.strategyOptions = { shardKey: spec.path.join(".") };
				}
				if (spec?.write && !spec.byRegion && a.retryPolicy === undefined) a.retryPolicy = { enabled: false };
			}
		},

		call(next: ServiceBroker["call"]) {
			return ((actionName: string, params?: unknown, callOpts?: CallingOptions) => {
				const spec = typeof actionName === "string" ? specOf(actionName) : undefined;
				if (!spec) return next(actionName, params, callOpts);
				if (!spec.byRegion) return route(next, actionName, params, callOpts, spec);
				const tracked = tracking(next);
				return ownContext(routeToRegion(tracked.call, actionName, params, callOpts, spec), tracked.ctx);
			}) as ServiceBroker["call"];
		},

		localAction(next: (ctx: Context) => Promise<unknown>, action: { home?: unknown }) {
			const spec = parseSpec(action.home);
			// A region-routed call concerns no user: nothing to own or fence. A self-fenced write fences itself.
			if (!spec || spec.byRegion || spec.selfFenced) return next;
			if (spec.write)
				return (ctx: Context) => {
					const userId = paramAt(ctx.params, spec.path);
					if (userId === undefined) return next(ctx);
					const meta = (ctx.meta as { $home?: HomeMeta }).$home;
					if (meta && meta.hops > maxHops) return Promise.reject(new RoutingLoopError(userId, meta.hops));
					return fence.run(userId, meta?.epoch, () => next(ctx), spec.atomic);
				};
			return (ctx: Context) => {
				const userId = paramAt(ctx.params, spec.path);
				if (userId === undefined) return next(ctx);
				const meta = (ctx.meta as { $home?: HomeMeta }).$home;
				if (meta && meta.hops > maxHops) return Promise.reject(new RoutingLoopError(userId, meta.hops));
				// The usual case decided without awaiting: the cache says this region owns the user at the caller's epoch.
				const cached = directory.cached(userId);
				if (cached?.region === region && (!meta || meta.epoch === cached.epoch)) return next(ctx);
				return admitRead(ctx, userId, cached).then(() => next(ctx));
			};
		},

		localEvent(next: (ctx: Context) => Promise<unknown>, event: { home?: unknown; name?: string }) {
			const spec = parseSpec(event.home);
			if (!spec || spec.byRegion) return next;
			return async (ctx: Context) => {
				const userId = paramAt(ctx.params, spec.path);
				const home = userId === undefined ? undefined : await directory.home(userId);
				if (!home || home.region === region) return next(ctx);
				// Handled where the user lives; a forwarded copy is never forwarded again, so no event loops.
				if ((ctx.meta as { $homeForwarded?: boolean }).$homeForwarded) return;
				const link = await links.broker(home.region);
				await link.emit(ctx.eventName!, ctx.params, { meta: { ...ctx.meta, $homeForwarded: true } });
			};
		}
	} as unknown as Middleware;
}

/** The `home:` of an action as `registry` knows it (a remote node's definition carries it too). */
function declaration(source: ServiceBroker | ServiceBroker["registry"], actionName: string): { home?: unknown } | undefined {
	const registry = "registry" in source ? source.registry : source;
	const endpoint = registry.getActionEndpoints(actionName)?.endpoints[0] as { action?: { home?: unknown } } | undefined;
	return endpoint?.action;
}

/**
 * Whether the broker's transporter is connected (always, for the in-process one). Moleculer's flag
 * stays up while the NATS client reconnects; the bus watch, where there is one, sees the drop.
 */
function connected(broker: ServiceBroker, bus: BusWatch | undefined): boolean {
	const transit = (broker as { transit?: { connected?: boolean } }).transit;
	return !transit || (transit.connected !== false && bus?.connected !== false);
}
