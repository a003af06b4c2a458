import type { ServiceBroker } from "moleculer";

/**
 * Counts the home-routed writes each user has in flight on this node, so a move can wait for
 * them: once a user is marked moving no new write is admitted, and when the count reaches zero
 * every acknowledged write is in the rows the move is about to copy.
 */
export class WriteBarrier {
	private readonly inFlight = new Map<string, number>();
	private readonly refresh: (userId: string) => Promise<unknown>;

	/** `refresh` re-reads the user's directory entry into this node's cache. */
	constructor(refresh: (userId: string) => Promise<unknown>) {
		this.refresh = refresh;
	}

	begin(userId: string): void {
		this.inFlight.set(userId, (this.inFlight.get(userId) ?? 0) + 1);
	}

	end(userId: string): void {
		const n = (this.inFlight.get(userId) ?? 1) - 1;
		if (n > 0) this.inFlight.set(userId, n);
		else this.inFlight.delete(userId);
	}

	count(userId: string): number {
		return this.inFlight.get(userId) ?? 0;
	}

	/**
	 * Resolves once `userId` has no write in flight here; rejects after `timeoutMs`. It first makes
	 * this node see the user's current state (moving), so no further write is admitted meanwhile.
	 */
	async drain(userId: string, timeoutMs: number): Promise<void> {
		const deadline = Date.now() + timeoutMs;
		await this.refresh(userId);
		while (this.count(userId) > 0) {
			if (Date.now() > deadline) throw new Error(`${this.count(userId)} write(s) for user ${userId} still in flight after ${timeoutMs} ms`);
			await new Promise(r => setTimeout(r, 10));
		}
	}
}

const barriers = new WeakMap<ServiceBroker, WriteBarrier>();

export function attachWriteBarrier(broker: ServiceBroker, barrier: WriteBarrier): void {
	barriers.set(broker, barrier);
}

/** This node's barrier; undefined on a broker without home routing (nothing to wait for). */
export function writeBarrierOf(broker: ServiceBroker): WriteBarrier | undefined {
	return barriers.get(broker);
}
