import type { HomeSpec, UserHomeSpec } from "./home-router.ts";

// What our schemas declare beyond Moleculer's typings: `home:` (home routing; an action may also be
// routed by region), `global:` on an event (delivered in every region) and the per-action `timeout`
// that Moleculer's timeout middleware honours but its typings omit.
declare module "../node_modules/moleculer/src/service.js" {
	interface ActionSchema<TThis> {
		home?: HomeSpec;
		timeout?: number;
	}
	interface EventSchema {
		home?: UserHomeSpec;
		global?: boolean;
	}
}
