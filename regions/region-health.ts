import { RegionUnavailableError } from "./errors.ts";
import type { RegionLinks } from "./links.ts";

export type RegionStatus = "up" | "down" | "unknown";

const DISCOVERY_GRACE_MS = 2000;

export interface RegionState {
	status: RegionStatus;
	/** When the status last changed (ms since epoch). */
	since: number;
	/** Why it is down. */
	reason?: string;
}

export interface RegionHealthOptions {
	self: string;
	regions: string[];
	links: RegionLinks;
	/** How often every other region is probed. */
	intervalMs?: number;
	/** A probe fails when no node of the region answers a ping within this. */
	probeTimeoutMs?: number;
	/** Consecutive failed probes that make a region down (one lost ping is not an outage). */
	failuresToDown?: number;
	onChange?: (region: string, state: RegionState) => void;
}

/**
 * Whether every other region is reachable, probed through the links (a ping to the region's
 * nodes). Calls forwarded to a region that goes down are failed at once with REGION_UNAVAILABLE
 * instead of waiting for their timeout: a region that is down fails fast, never silently.
 */
export class RegionHealth {
	private readonly opts: Required<Omit<RegionHealthOptions, "onChange">> & Pick<RegionHealthOptions, "onChange">;
	private readonly states = new Map<string, RegionState>();
	private readonly waiting = new Map<string, Set<(err: Error) => void>>();
	private timer: NodeJS.Timeout | undefined;
	private probing = false;
	private readonly firstProbe = new Map<string, number>();
	private readonly failures = new Map<string, number>();

	constructor(opts: RegionHealthOptions) {
		this.opts = { intervalMs: 300, probeTimeoutMs: 600, failuresToDown: 2, ...opts };
		const now = Date.now();
		for (const r of opts.regions) this.states.set(r, { status: r === opts.self ? "up" : "unknown", since: now });
	}

	start(): void {
		if (this.timer) return;
		const tick = () => {
			void this.probeAll().finally(() => {
				if (this.timer) this.timer = setTimeout(tick, this.opts.intervalMs);
			});
		};
		this.timer = setTimeout(tick, 0);
		this.timer.unref();
	}

	stop(): void {
		clearTimeout(this.timer);
		this.timer = undefined;
	}

	status(region: string): RegionStatus {
		return this.states.get(region)?.status ?? "unknown";
	}

	all(): Record<string, RegionState> {
		return Object.fromEntries(this.states);
	}

	/** Settles like `call`, unless `region` goes down first: then REGION_UNAVAILABLE at once. */
	guard<T>(region: string, call: Promise<T>): Promise<T> {
		if (this.status(region) === "down") {
			call.catch(() => undefined);
			return Promise.reject(this.unavailable(region));
		}
		return new Promise<T>((resolve, reject) => {
			let set = this.waiting.get(region);
			if (!set) this.waiting.set(region, (set = new Set()));
			const waiter = (err: Error) => reject(err);
			set.add(waiter);
			call.then(resolve, reject).finally(() => set.delete(waiter));
		});
	}

	private unavailable(region: string): RegionUnavailableError {
		return new RegionUnavailableError(region, 5, this.states.get(region)?.reason);
	}

	private async probeAll(): Promise<void> {
		if (this.probing) return;
		this.probing = true;
		try {
			await Promise.all(this.opts.regions.filter(r => r !== this.opts.self).map(r => this.probe(r)));
		} finally {
			this.probing = false;
		}
	}

	private async probe(region: string): Promise<void> {
		try {
			const link = await this.opts.links.broker(region);
			// Other regions' links are members of this namespace too; only the region's own nodes count.
			const nodes = link.registry.getNodeList({ onlyAvailable: true, withServices: false }).filter(n => !n.local && n.metadata?.region === region);
			if (nodes.length === 0) {
				// A new link hears of the region's nodes within a moment; only silence past that is "down".
				const firstSeen = this.firstProbe.get(region) ?? Date.now();
				this.firstProbe.set(region, firstSeen);
				if (Date.now() - firstSeen < DISCOVERY_GRACE_MS) return;
				return this.fail(region, "no node of the region is known");
			}
			const pongs = (await link.ping(
				nodes.map(n => n.id),
				this.opts.probeTimeoutMs
			)) as unknown as Record<string, unknown>;
			if (Object.values(pongs).some(p => p)) this.set(region, "up");
			else this.fail(region, `no node answered within ${this.opts.probeTimeoutMs} ms`);
		} catch (err) {
			this.fail(region, (err as Error).message);
		}
	}

	private fail(region: string, reason: string): void {
		const failures = (this.failures.get(region) ?? 0) + 1;
		this.failures.set(region, failures);
		if (failures >= this.opts.failuresToDown) this.set(region, "down", reason);
	}

	private set(region: string, status: RegionStatus, reason?: string): void {
		if (status === "up") this.failures.set(region, 0);
		const current = this.states.get(region);
		if (current?.status === status) return;
		const state: RegionState = { status, since: Date.now(), ...(reason ? { reason } : {}) };
		this.states.set(region, state);
		this.opts.onChange?.(region, state);
		if (status === "down") {
			const set = this.waiting.get(region);
			if (set) for (const fail of [...set]) fail(this.unavailable(region));
		}
	}
}
