import type { DirectoryStore } from "../../regions/directory/store.ts";

/**
 * Every call of `store` passed on unchanged: the base of the test's directory wrappers, which
 * override only what their fault or view changes (a method the interface gains needs no edit there).
 */
export function passThrough(store: DirectoryStore): DirectoryStore {
	return {
		get: (key, opts) => store.get(key, opts),
		list: (prefix, opts) => store.list(prefix, opts),
		create: (key, value) => store.create(key, value),
		update: (key, value, revision) => store.update(key, value, revision),
		delete: (key, revision) => store.delete(key, revision),
		watch: (onChange, opts) => store.watch(onChange, opts),
		checkOrigin: () => store.checkOrigin(),
		close: () => store.close()
	};
}
