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
