/** Polls `check` until it holds; resolves with how long that took, rejects after `ms`. */
export async function within(check: () => Promise<boolean> | boolean, ms: number): Promise<number> {
	const started = Date.now();
	while (!(await check())) {
		if (Date.now() - started > ms) throw new Error(`not within ${ms} ms`);
		await new Promise(r => setTimeout(r, 25));
	}
	return Date.now() - started;
}

/** The error a call ends with (or `{ type: "(succeeded)" }`), for asserting on its type, code and data. */
export function failureOf(p: Promise<unknown>): Promise<{ type: string; code?: number; data?: any }> {
	return p.then(
		() => ({ type: "(succeeded)" }),
		e => e
	);
}

/** How long an operation took to settle, and what it settled with (value or error). */
export async function timed<T>(op: Promise<T>): Promise<{ ms: number; result: T | unknown }> {
	const started = Date.now();
	const result = await op.catch(err => err);
	return { ms: Date.now() - started, result };
}

/**
 * A registration made right after the regions started: while a region's link is still coming up
 * it answers REGION_UNAVAILABLE (nothing registered), so it is sent again, for up to 10 s.
 */
export async function registered(register: () => Promise<{ id: string }>): Promise<string> {
	const deadline = Date.now() + 10_000;
	for (;;) {
		try {
			return (await register()).id;
		} catch (err) {
			if ((err as { type?: string }).type !== "REGION_UNAVAILABLE" || Date.now() > deadline) throw err;
			await new Promise(r => setTimeout(r, 200));
		}
	}
}
