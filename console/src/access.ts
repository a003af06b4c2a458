import { createContext } from "preact";
import { useContext } from "preact/hooks";
import { api } from "./api.ts";

/**
 * What the logged-in caller may do, as the API tells it (GET /api/v1/me/permissions). Controls the
 * caller may not use are not shown; the API refuses them anyway, so this is for the eye only.
 */
export class Access {
	readonly userId: string;
	readonly roles: readonly string[];
	private readonly held: ReadonlySet<string>;

	constructor(answer: { userId: string; roles: string[]; permissions: { resource: string; action: string }[] }) {
		this.userId = answer.userId;
		this.roles = answer.roles;
		this.held = new Set(answer.permissions.map(p => `${p.resource}:${p.action}`));
	}

	/** As the API decides: the permission itself, or action `*` on its resource. */
	can(resource: string, action: string): boolean {
		return this.held.has(`${resource}:${action}`) || this.held.has(`${resource}:*`);
	}

	/** Whether the console has anything to show this caller at all. */
	get isStaff(): boolean {
		return STAFF_READS.some(([resource, action]) => this.can(resource, action));
	}
}

/** The reads the console's pages start from. */
const STAFF_READS: [string, string][] = [
	["users", "read"],
	["regions", "read"],
	["audit", "read"],
	["notices", "dlq"]
];

export async function loadAccess(): Promise<Access> {
	return new Access(await api("GET", "/api/v1/me/permissions"));
}

export const AccessContext = createContext<Access | null>(null);

export function useAccess(): Access {
	const access = useContext(AccessContext);
	if (!access) throw new Error("useAccess outside a signed-in console");
	return access;
}
