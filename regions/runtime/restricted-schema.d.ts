// `restricted:` on an action or event: it runs for a caller on another node only when the call is
// signed with a key of that capability (regions/runtime/restricted-calls.ts).
declare module "../../node_modules/moleculer/src/service.js" {
	interface ActionSchema<TThis> {
		restricted?: string;
	}
	interface EventSchema {
		restricted?: string;
	}
}

export {};
