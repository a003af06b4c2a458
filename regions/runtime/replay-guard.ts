/** Why a signed message was not admitted: too old or too far ahead, seen before, or no room to remember it. */
export type ReplayRefusal = "expired" | "replayed" | "busy";

/**
 * Admits each signed message once: its timestamp must be within `windowMs` of this node's clock,
 * and its nonce unseen. A nonce is remembered for twice the window (as long as a copy could still
 * pass the timestamp check), at most `maxNonces` at a time; past that, messages are refused rather
 * than forgetting a nonce that could be replayed.
 */
export class ReplayGuard {
	/** Nonce → when it was first admitted; insertion order is admission order, so the oldest come first. */
	private readonly seen = new Map<string, number>();

	readonly windowMs: number;
	readonly maxNonces: number;

	constructor(windowMs: number, maxNonces: number) {
		this.windowMs = windowMs;
		this.maxNonces = maxNonces;
	}

	admit(nonce: string, timestamp: number, now = Date.now()): ReplayRefusal | undefined {
		if (Math.abs(now - timestamp) > this.windowMs) return "expired";
		for (const [old, at] of this.seen) {
			if (at >= now - 2 * this.windowMs) break;
			this.seen.delete(old);
		}
		if (this.seen.has(nonce)) return "replayed";
		if (this.seen.size >= this.maxNonces) return "busy";
		this.seen.set(nonce, now);
		return undefined;
	}

	/** An admitted nonce whose message was not acted on: its sender may send it again. */
	forget(nonce: string): void {
		this.seen.delete(nonce);
	}

	get size(): number {
		return this.seen.size;
	}
}
