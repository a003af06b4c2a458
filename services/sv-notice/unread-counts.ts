/**
 * The unread counts a live push carries, read when the push leaves the outbox rather than when
 * its write runs: a write saves a statement, and the count is the latest one. The relay sends a
 * round's rows all at once, so the counts asked for in one turn of the event loop are read
 * together, in one statement.
 */
export class UnreadCounts {
	private readonly read: (userIds: string[]) => Promise<Map<string, number>>;
	private waiting: Map<string, { resolve: (n: number) => void; reject: (err: unknown) => void }[]> | undefined;

	constructor(read: (userIds: string[]) => Promise<Map<string, number>>) {
		this.read = read;
	}

	of(userId: string): Promise<number> {
		return new Promise((resolve, reject) => {
			if (!this.waiting) {
				this.waiting = new Map();
				queueMicrotask(() => void this.flush());
			}
			const asked = this.waiting.get(userId) ?? [];
			asked.push({ resolve, reject });
			this.waiting.set(userId, asked);
		});
	}

	private async flush(): Promise<void> {
		const asked = this.waiting!;
		this.waiting = undefined;
		try {
			const counts = await this.read([...asked.keys()]);
			for (const [userId, waiters] of asked) for (const w of waiters) w.resolve(counts.get(userId) ?? 0);
		} catch (err) {
			for (const waiters of asked.values()) for (const w of waiters) w.reject(err);
		}
	}
}
