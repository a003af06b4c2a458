import type { ServiceBroker } from "moleculer";

/**
 * What a named middleware installed on `broker` carries under `key` (a watch, a probe): how the
 * node's own facts are found from code that only has the broker; undefined where it is not installed.
 */
export function middlewarePart<T>(broker: ServiceBroker, name: string, key: string): T | undefined {
	const list = (broker.middlewares as unknown as { list: ({ name?: string } & Record<string, unknown>)[] }).list;
	return list.find(m => m.name === name)?.[key] as T | undefined;
}
