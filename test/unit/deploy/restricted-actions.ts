import type { AnyServiceSchema } from "../../../services/index.ts";

/** A `restricted:` marker of a service's action or event, as the node runs it (its mixins' included). */
export interface Restricted {
	capability: string;
	/** `service.action`, or the event's name. */
	name: string;
	kind: "action" | "event";
}

/** What `schema` restricts to which capability: its own actions and events and those its mixins add. */
export function restrictedOf(schema: AnyServiceSchema, service = String(schema.name)): Restricted[] {
	const found: Restricted[] = [];
	for (const [key, def] of Object.entries(schema.actions ?? {})) {
		const capability = (def as { restricted?: unknown } | undefined)?.restricted;
		if (typeof capability === "string") found.push({ capability, name: `${service}.${key}`, kind: "action" });
	}
	for (const [key, def] of Object.entries(schema.events ?? {})) {
		const capability = (def as { restricted?: unknown } | undefined)?.restricted;
		if (typeof capability === "string") found.push({ capability, name: key, kind: "event" });
	}
	for (const mixin of (schema.mixins ?? []) as AnyServiceSchema[]) found.push(...restrictedOf(mixin, service));
	return found;
}
