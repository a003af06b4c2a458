import { connect } from "nats";
import { REAL } from "./real-servers.ts";

/**
 * Deletes the channel and dead-letter streams whose name holds `_<namespace>_` or `_<namespace>-`
 * (a run's own namespace, or a run's prefix of region namespaces) from the shared server.
 */
export async function deleteChannelStreams(namespace: string, servers = REAL.nats): Promise<void> {
	const nc = await connect({ servers });
	try {
		const jsm = await nc.jetstreamManager();
		for await (const stream of jsm.streams.list()) {
			const name = stream.config.name;
			if (/^CH(DLQ)?_/.test(name) && (name.includes(`_${namespace}_`) || name.includes(`_${namespace}-`))) await jsm.streams.delete(name);
		}
	} finally {
		await nc.close();
	}
}
