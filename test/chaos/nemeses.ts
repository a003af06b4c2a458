import { existsSync } from "node:fs";
import type { Op } from "./checker.ts";
import type { NodeProcess, Session } from "./session.ts";
import { PRIMARY, REGIONS } from "./session.ts";

/** A seeded random source, so a run's choices (not its timing) can be replayed from its seed. */
export interface Rng {
	next(): number;
	between(lo: number, hi: number): number;
	pick<T>(items: readonly T[]): T;
}

export function seeded(seed: number): Rng {
	let a = seed >>> 0;
	const next = () => {
		// mulberry32
		a = (a + 0x6d2b79f5) >>> 0;
		let t = a;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
	return {
		next,
		between: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
		pick: items => items[Math.floor(next() * items.length)]!
	};
}

/** What a nemesis may see and do while the load runs. */
export interface NemesisContext {
	session: Session;
	rng: Rng;
	/** Sleeps `ms`; true if the run goes on, false (early) once the faults are to stop. */
	wait(ms: number): Promise<boolean>;
	/** Moves in flight, with the node each runs on. */
	movesInFlight(): { op: Op; node: NodeProcess }[];
	/** While set, moves take users out of this region (the half-dead nemesis). */
	setMoveOutOf(region: string | undefined): void;
	log(line: string): void;
	/** Scales the nemeses' pauses and holds to the run's length (1 = the long run). */
	pace: number;
}

/**
 * A fault injector: loops until `wait` says stop, and always undoes its own fault before it
 * returns, so the run heals. Faults are taken through holds (Session.holdNats, NodeProcess.hold):
 * nemeses that overlap on one server or node compose instead of racing.
 */
export type Nemesis = (ctx: NemesisContext) => Promise<void>;

const NON_PRIMARY = REGIONS.filter(r => r !== PRIMARY);
const ms = (ctx: NemesisContext, lo: number, hi: number) => Math.round(ctx.rng.between(lo, hi) * ctx.pace);

/** (a) SIGKILL the node that runs a move, mid-move; restart it (same node id) a moment later. */
export const moverKill: Nemesis = async ctx => {
	while (await ctx.wait(ms(ctx, 1500, 3500))) {
		const target = await moveToKill(ctx);
		if (!target) continue;
		const { node, op } = target;
		ctx.log(`nemesis mover-kill: SIGKILL ${node.key}, running move ${op.id} of ${op.userId} → ${op.to}`);
		await node.hold();
		await ctx.wait(ctx.rng.between(500, 2000));
		await node.release();
		ctx.log(`nemesis mover-kill: ${node.key} back (${node.state})`);
	}
};

/**
 * A move to kill at a random moment inside it: moves take from tens of ms (nothing to wait for)
 * to seconds, so watch for one in flight (for up to 3 s), let a random part of it run, and take
 * it if it is still running then.
 */
async function moveToKill(ctx: NemesisContext): Promise<{ op: Op; node: NodeProcess } | undefined> {
	for (const until = Date.now() + 3000; Date.now() < until; ) {
		const running = ctx.movesInFlight().filter(m => m.node.state === "up");
		if (!running.length) {
			if (!(await ctx.wait(10))) return undefined;
			continue;
		}
		const target = ctx.rng.pick(running);
		if (!(await ctx.wait(ctx.rng.between(0, 400)))) return undefined;
		if (target.node.state === "up" && ctx.movesInFlight().some(m => m.op === target.op)) return target;
	}
	return undefined;
}

/** Kills a region's NATS server for a while, then starts it again on the same ports and storage. */
async function natsOutage(ctx: NemesisContext, region: string, downMs: number, what: string): Promise<void> {
	ctx.log(`nemesis ${what}: ${region} NATS down`);
	await ctx.session.holdNats(region);
	await ctx.wait(downMs);
	await ctx.session.releaseNats(region);
	ctx.log(`nemesis ${what}: ${region} NATS back`);
}

/** (b) restart a non-primary region's NATS. */
export const natsRestart: Nemesis = async ctx => {
	while (await ctx.wait(ms(ctx, 3000, 6000))) await natsOutage(ctx, ctx.rng.pick(NON_PRIMARY), ctx.rng.between(2000, 5000), "nats-restart");
};

/** (c) restart the primary's NATS: the origin bucket is unreachable meanwhile. */
export const primaryNatsRestart: Nemesis = async ctx => {
	while (await ctx.wait(ms(ctx, 3000, 6000))) await natsOutage(ctx, PRIMARY, ctx.rng.between(2000, 5000), "primary-nats-restart");
};

/** A whole region down: its NATS and both its nodes killed at once; NATS back first, then the nodes. */
async function regionOutage(ctx: NemesisContext, region: string, downMs: number): Promise<void> {
	const nodes = ctx.session.nodes.filter(n => n.region === region);
	ctx.log(`nemesis region-kill: ${region} down (NATS and ${nodes.map(n => n.key).join(", ")})`);
	await Promise.all([ctx.session.holdNats(region), ...nodes.map(n => n.hold())]);
	await ctx.wait(downMs);
	await ctx.session.releaseNats(region);
	await Promise.all(nodes.map(n => n.release()));
	ctx.log(`nemesis region-kill: ${region} back (${nodes.map(n => `${n.key} ${n.state}`).join(", ")})`);
}

/** (d) kill a non-primary region whole, then restart it. */
export const regionKill: Nemesis = async ctx => {
	while (await ctx.wait(ms(ctx, 3000, 6000))) await regionOutage(ctx, ctx.rng.pick(NON_PRIMARY), ctx.rng.between(3000, 6000));
};

/**
 * (e) half-dead region: only its service node (the ledger participant) is killed; its aux node
 * (sv-region) lives on, answers pings and takes calls, and moves take users out of the region.
 * The hold outlasts the 15 s heartbeat timeout, after which the registry forgets the dead node.
 */
export const halfDead: Nemesis = async ctx => {
	while (await ctx.wait(ms(ctx, 2000, 4000))) {
		const region = ctx.rng.pick(REGIONS);
		const svc = ctx.session.node(region, "svc");
		ctx.log(`nemesis half-dead: SIGKILL ${svc.key}; ${region}/aux lives; moves out of ${region}`);
		await svc.hold();
		ctx.setMoveOutOf(region);
		await ctx.wait(ctx.rng.between(20_000, 25_000));
		ctx.setMoveOutOf(undefined);
		await svc.release();
		ctx.log(`nemesis half-dead: ${svc.key} back (${svc.state})`);
	}
};

/**
 * What nemesis (f) needs from test/harness/mirror-lag.ts: relays on some regions'
 * links into the hub (handed to startEdgeTopology as `linkFront`), and a lag on what crosses into one of
 * them. Typed here, loaded at run time: the suite still runs (with (f) skipped) where that file
 * does not exist.
 */
export interface MirrorLag {
	/** The relays for `regions`; pass `front` to startEdgeTopology. */
	relays(regions: readonly string[]): MirrorRelays;
}

export interface MirrorRelays {
	readonly front: unknown;
	/** Holds the region's mirror deliveries `delayMs` each, or until resume() (a stall). */
	lag(region: string, delayMs?: number): { resume(): Promise<void>; held(): number };
}

export const MIRROR_LAG_MODULE = new URL("../harness/mirror-lag.ts", import.meta.url);

/** The adapter over test/harness/mirror-lag.ts, or undefined where it does not exist. */
export async function loadMirrorLag(): Promise<MirrorLag | undefined> {
	if (!existsSync(MIRROR_LAG_MODULE)) return undefined;
	const mod = (await import(MIRROR_LAG_MODULE.href)) as {
		linkRelays?: (regions: readonly string[]) => unknown;
		lagLink?: (relays: unknown, region: string, opts: { scope?: "mirror" | "all"; delayMs?: number }) => { resume(): Promise<void>; held(): number };
	};
	const { linkRelays, lagLink } = mod;
	if (!linkRelays || !lagLink)
		throw new Error("test/harness/mirror-lag.ts no longer exports linkRelays and lagLink: adapt loadMirrorLag in test/chaos/nemeses.ts");
	return {
		relays(regions) {
			const front = linkRelays(regions);
			return { front, lag: (region, delayMs) => lagLink(front, region, { scope: "mirror", ...(delayMs === undefined ? {} : { delayMs }) }) };
		}
	};
}

/** The mirrors that can be made to lag: every region but the primary (which reads the origin itself). */
export const LAGGED_REGIONS = NON_PRIMARY;

/**
 * (f) a non-primary region's mirror falls behind the origin — its deliveries delayed by a few
 * seconds, or stalled — for a while, then catches up. Its nodes' caches and reads trail with it.
 */
export const mirrorLag: Nemesis = async ctx => {
	const relays = ctx.session.relays;
	if (!relays) throw new Error("mirror-lag: the session was started without link relays");
	while (await ctx.wait(ms(ctx, 2000, 5000))) {
		const region = ctx.rng.pick(LAGGED_REGIONS);
		const stall = ctx.rng.next() < 0.5;
		const delayMs = stall ? undefined : ctx.rng.between(1000, 4000);
		const holdMs = ctx.rng.between(4000, 10_000);
		ctx.log(`nemesis mirror-lag: ${region}'s mirror ${stall ? "stalled" : `delayed ${delayMs} ms`} for ${holdMs} ms`);
		const lag = relays.lag(region, delayMs);
		await ctx.wait(holdMs);
		const held = lag.held();
		await lag.resume();
		ctx.log(`nemesis mirror-lag: ${region}'s mirror released (${held} frames were held)`);
	}
};

/**
 * (b), (c) and (d) in turn: one NATS-level outage at a time, so the JetStream meta layer (three
 * servers) always keeps its quorum while the node-level nemeses run alongside.
 */
export const natsRotation: Nemesis = async ctx => {
	const outages = [
		() => natsOutage(ctx, ctx.rng.pick(NON_PRIMARY), ctx.rng.between(2000, 4000), "nats-restart"),
		() => natsOutage(ctx, PRIMARY, ctx.rng.between(2000, 4000), "primary-nats-restart"),
		() => regionOutage(ctx, ctx.rng.pick(NON_PRIMARY), ctx.rng.between(3000, 5000))
	];
	for (let i = 0; await ctx.wait(ms(ctx, 2000, 4000)); i++) await outages[i % outages.length]!();
};
