import type { Readable } from "node:stream";
import type { CallingOptions, ServiceBroker } from "moleculer";
import { fromDirectoryFailure, RegionUnavailableError, UserMovingError, UserNotFoundError, WrongRegionError } from "../../regions/errors.ts";
import { regionRuntimeOf } from "../../regions/runtime/region-runtime.ts";
import { toWire } from "./wire.ts";

/**
 * Calls of sv-oss's streamed actions (an upload's body, a download's bytes) in the user's home
 * region. The home router forwards a call's parameters but not a stream, so these resolve the
 * home themselves, as the router does, and call there: on this region's bus, or through the link.
 * The home checks that it owns the user (`ownsHere`); a stale view heals by one re-read of the
 * directory's origin, for calls that carry no stream (a stream cannot be sent twice). `bytes`, the
 * stream to send: as is to a node of this process (no copy), encoded for the bus otherwise (wire.ts).
 */
export async function callHome<T>(
	broker: ServiceBroker,
	userId: string,
	action: string,
	params: object,
	opts: CallingOptions = {},
	bytes?: Readable
): Promise<T> {
	const runtime = regionRuntimeOf(broker);
	for (let attempt = 1; ; attempt++) {
		const home = await (attempt === 1 ? runtime.directory.home(userId) : runtime.directory.refresh(userId)).catch(fromDirectoryFailure);
		if (!home) throw new UserNotFoundError(userId);
		const local = servedInProcess(broker, home.region, action);
		if (bytes) Object.assign(opts, local ? { stream: bytes, nodeID: broker.nodeID } : { stream: toWire(bytes) });
		try {
			return await runtime.call<T>(home.region, action, params, opts);
		} catch (err) {
			const type = (err as { type?: string }).type;
			if (type === "SERVICE_NOT_AVAILABLE" || type === "SERVICE_NOT_FOUND" || /waiting is timed out|did not connect/i.test((err as Error).message))
				throw new RegionUnavailableError(home.region, 5, (err as Error).message);
			if (type !== "WRONG_REGION") throw err;
			if (opts.stream || attempt >= 2) throw new UserMovingError(userId);
		}
	}
}

/** Whether `action` for a user homed in `region` runs in this process: this region's, with the service here. */
export function servedInProcess(broker: ServiceBroker, region: string | undefined, action: string): boolean {
	return region === regionRuntimeOf(broker).region.id && Boolean(broker.registry.getActionEndpoints(action)?.hasLocal());
}

/** At the home: refuses a call for a user this region does not own now (the caller heals). */
export async function ownsHere(broker: ServiceBroker, userId: string): Promise<void> {
	const runtime = regionRuntimeOf(broker);
	const home = await runtime.directory.home(userId).catch(fromDirectoryFailure);
	if (!home) throw new UserNotFoundError(userId);
	if (home.region !== runtime.region.id) throw new WrongRegionError(userId, home.region, home.epoch);
}
