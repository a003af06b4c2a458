import { createServer } from "node:net";

/** A loopback port nothing listens on right now. */
export function freePort(): Promise<number> {
	return new Promise((resolve, reject) => {
		const server = createServer();
		server.unref();
		server.once("error", reject);
		server.listen(0, "127.0.0.1", () => {
			const { port } = server.address() as { port: number };
			server.close(() => resolve(port));
		});
	});
}

/** `n` distinct loopback ports nothing listens on: each held until all are drawn, so none is drawn twice. */
export async function freePorts(n: number): Promise<number[]> {
	const servers = [];
	try {
		for (let i = 0; i < n; i++) {
			const server = createServer();
			servers.push(server);
			await new Promise<void>((resolve, reject) => {
				server.once("error", reject);
				server.listen(0, "127.0.0.1", resolve);
			});
		}
		return servers.map(s => (s.address() as { port: number }).port);
	} finally {
		await Promise.all(servers.map(s => new Promise(resolve => s.close(resolve))));
	}
}
