import type { Context, ServiceSchema } from "moleculer";
import type { HomeEntry } from "./directory/entries.ts";
import type { HomeDirectory } from "./directory/home-directory.ts";
import type { RegionRuntime } from "./runtime/region-runtime.ts";

/**
 * Every node's caches hear of a user's new home from the mover itself, in every region, as soon
 * as the origin has it: the change feed may trail by seconds (or stall), and until it arrives a
 * node would route to, and read from, the old home. Best effort: the feed still follows.
 */
export const HOME_CHANGED = "edgehome.homeChanged";

interface Announcement {
	userId: string;
	home: HomeEntry;
	revision: number;
}

/** The service every region node runs to hear announcements: internal (`$`), so listings leave it out. */
export function homeAnnouncements(directory: HomeDirectory): ServiceSchema {
	return {
		name: "$home-announcements",
		events: {
			[HOME_CHANGED]: {
				params: {
					userId: "string",
					revision: { type: "number", integer: true, min: 1 },
					home: {
						type: "object",
						props: {
							region: "string",
							epoch: { type: "number", integer: true, min: 1 },
							state: { type: "enum", values: ["active", "moving"] },
							pinned: "boolean"
						}
					}
				},
				handler(ctx: Context<Announcement>) {
					directory.learn(ctx.params.userId, ctx.params.home, ctx.params.revision);
				}
			}
		}
	};
}

/** Tells every node of every region (this one, and the others through the links). */
export function announceHome(runtime: RegionRuntime, announcement: Announcement): void {
	const quiet = (p: Promise<unknown>) => void p.catch(err => runtime.broker.logger.debug(`home announcement not delivered: ${(err as Error).message}`));
	for (const { id } of runtime.regions) quiet(runtime.bus(id).then(bus => bus.broadcast(HOME_CHANGED, announcement)));
}
