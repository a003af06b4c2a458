import { randomUUID } from "node:crypto";
import { TransferSessionNotFoundError, TransfersBusyError } from "./errors.ts";

/**
 * Flow control of a transfer between a gateway and the file's home on another node. Moleculer
 * streams over the bus with sender-side pacing only (a chunk is sent as soon as the transporter's
 * publish returns), so a receiver slower than its sender gathers up to the whole file. Instead the
 * bytes go as parts, each a request answered only once the receiver has room for it, with at most
 * WINDOW parts unanswered: the slower side sets the pace, and each side holds a few parts at most.
 */

/** Bytes per part: a multiple of 3 (its base64 has no padding inside), 256 kB as base64, well within NATS's max_payload. */
export const PART_BYTES = 192 * 1024;
/** Base64 length of a full part. */
export const PART_BASE64 = (PART_BYTES / 3) * 4;
/** Parts a sender has unanswered at once: enough to cover a round trip, few enough to bound memory. */
export const WINDOW = 4;
/**
 * Bytes an upload at the home holds ahead of its store before a part's answer waits (the body's
 * buffer, both sides): with WINDOW parts, ≈ 1.3 MB per upload at most.
 */
export const UPLOAD_HIGH_WATER = 256 * 1024;
/** A part's bytes as base64, as the part actions accept them (no line breaks, padding only at the end). */
export const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Bytes held now by the transfers it counts, and the most held at once since `resetPeak`. */
export class HeldBytes {
	now = 0;
	peak = 0;

	add(n: number): void {
		this.now += n;
		if (this.now > this.peak) this.peak = this.now;
	}

	drop(n: number): void {
		this.now -= n;
	}

	resetPeak(): void {
		this.peak = this.now;
	}
}

interface Expiring {
	/** Ends the transfer with `err`: what it holds is let go. */
	fail(err: Error): void;
}

/**
 * The transfers a home node holds, by random id: at most `max`, each dropped (failed) once it has
 * seen no request for `idleMs`: a gateway that died or went silent leaves nothing held for long.
 */
export class Sessions<T extends Expiring> {
	private readonly open = new Map<string, { session: T; timer: NodeJS.Timeout }>();
	private readonly max: number;
	private readonly idleMs: number;

	constructor(max: number, idleMs: number) {
		this.max = max;
		this.idleMs = idleMs;
	}

	add(session: T): string {
		if (this.open.size >= this.max) throw new TransfersBusyError(this.max);
		const id = randomUUID();
		this.open.set(id, { session, timer: this.expiry(id) });
		return id;
	}

	/** The session, its idle time restarted; TRANSFER_SESSION_NOT_FOUND if there is none. */
	get(id: string): T {
		const entry = this.open.get(id);
		if (!entry) throw new TransferSessionNotFoundError(id);
		entry.timer.refresh();
		return entry.session;
	}

	/** Forgets the session (it ended); false if it was not held. */
	remove(id: string): boolean {
		const entry = this.open.get(id);
		if (!entry) return false;
		clearTimeout(entry.timer);
		return this.open.delete(id);
	}

	/** Ends the session with `err` and forgets it; TRANSFER_SESSION_NOT_FOUND if there is none. */
	end(id: string, err: Error): void {
		const session = this.get(id);
		this.remove(id);
		session.fail(err);
	}

	get size(): number {
		return this.open.size;
	}

	sessions(): T[] {
		return [...this.open.values()].map(e => e.session);
	}

	/** Fails every session (the service stops). */
	close(err: Error): void {
		for (const id of [...this.open.keys()]) this.end(id, err);
	}

	private expiry(id: string): NodeJS.Timeout {
		const timer = setTimeout(() => {
			if (this.open.has(id)) this.end(id, new TransferSessionNotFoundError(id));
		}, this.idleMs);
		timer.unref();
		return timer;
	}
}
