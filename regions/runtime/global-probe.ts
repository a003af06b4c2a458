import type { Middleware, ServiceBroker } from "moleculer";
import type { DirectoryStore } from "../directory/store.ts";
import { middlewarePart } from "./middleware-part.ts";

export type GlobalStatus = "available" | "unavailable" | "unknown";

export interface GlobalState {
	status: GlobalStatus;
	/** When the status last changed (ms since epoch). */
	since: number;
}

export interface GlobalProbeOptions {
	store: DirectoryStore;
	/** Mean time between the end of one probe and the start of the next (jittered ±20 %). */
	intervalMs: number;
	/** A probe that has not answered within this declares the origin unreachable. */
	timeoutMs: number;
}

const JITTER = 0.2;
const MIDDLEWARE_NAME = "GlobalProbe";

/** The probe of a region node's broker; none on other brokers (the REPL, links, tests). */
export function globalProbeOf(broker: ServiceBroker): GlobalProbe | undefined {
	return middlewarePart(broker, MIDDLEWARE_NAME, "probe");
}

/**
 * Whether a write to the directory's origin could commit now, so whether operations that need global
 * agreement (registration, moves, identity changes) can succeed. Not a read: an origin leader cut off
 * from its quorum goes on answering reads for seconds (DirectoryStore.checkOrigin). One check at a
 * time: the next starts only after the previous settled, however long the store takes, while
 * the status turns unavailable as soon as the check outlasts `timeoutMs`.
 */
export class GlobalProbe {
	private readonly opts: GlobalProbeOptions;
	private current: GlobalState = { status: "unknown", since: Date.now() };
	private timer: NodeJS.Timeout | undefined;
	private running = false;
	private inFlight = false;
	private logger: ServiceBroker["logger"] | undefined;

	constructor(opts: GlobalProbeOptions) {
		this.opts = opts;
	}

	get state(): GlobalState {
		return this.current;
	}

	/** The broker middleware that probes from the broker's start until it begins to stop. */
	middleware(): Middleware {
		return {
			name: MIDDLEWARE_NAME,
			probe: this,
			started: (broker: ServiceBroker) => {
				this.logger = broker.logger;
				this.start();
			},
			stopping: () => this.stop()
		} as unknown as Middleware;
	}

	start(): void {
		this.running = true;
		if (!this.inFlight && !this.timer) void this.probe();
	}

	stop(): void {
		this.running = false;
		clearTimeout(this.timer);
		this.timer = undefined;
	}

	private async probe(): Promise<void> {
		this.timer = undefined;
		this.inFlight = true;
		// An answer after the bound does not make the origin available: the next probe must be in time.
		let late = false;
		const bound = setTimeout(() => {
			late = true;
			this.record("unavailable", `the origin did not answer within ${this.opts.timeoutMs} ms`);
		}, this.opts.timeoutMs);
		bound.unref();
		await this.opts.store.checkOrigin().then(
			() => (late ? undefined : this.record("available")),
			(err: Error) => this.record("unavailable", err.message)
		);
		clearTimeout(bound);
		this.inFlight = false;
		if (!this.running) return;
		const delay = this.opts.intervalMs * (1 - JITTER + Math.random() * 2 * JITTER);
		this.timer = setTimeout(() => void this.probe(), delay);
		this.timer.unref();
	}

	private record(status: GlobalStatus, cause?: string): void {
		if (!this.running || this.current.status === status) return;
		this.current = { status, since: Date.now() };
		if (status === "available") this.logger?.info("global operations available: the directory's origin can commit writes");
		else this.logger?.warn(`global operations unavailable (registration, moves, identity changes): ${cause}`);
	}
}
