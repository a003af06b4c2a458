/**
 * Retries `op` while the directory answers DIRECTORY_UNAVAILABLE — a store's DirectoryError or
 * sv-region's error of that type — within a bound: JetStream may still be electing its leader,
 * or a restarted region may not have caught up yet.
 */
export async function whileDirectoryUnavailable<T>(op: () => Promise<T>, timeoutMs = 15_000, intervalMs = 200): Promise<T> {
	const deadline = Date.now() + timeoutMs;
	for (;;) {
		try {
			return await op();
		} catch (err) {
			const { code, type } = err as { code?: unknown; type?: unknown };
			const unavailable = code === "DIRECTORY_UNAVAILABLE" || type === "DIRECTORY_UNAVAILABLE";
			if (!unavailable || Date.now() > deadline) throw err;
			await new Promise(r => setTimeout(r, intervalMs));
		}
	}
}
