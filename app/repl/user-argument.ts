import type { ServiceBroker } from "moleculer";
import type { IdentityKind } from "../../regions/directory/entries.ts";
import { IDENTITY_KINDS, isUserId } from "../../regions/directory/entries.ts";

export const USER_ARGUMENT = "<userId|username|kind:value>";

/** A user as an operator names one: a user id, `<kind>:<value>` (`email:ann@example.com`), or a username (which holds no colon). */
export async function userIdOf(broker: ServiceBroker, arg: string): Promise<string> {
	const candidate: unknown = arg;
	if (isUserId(candidate)) return candidate;
	const colon = arg.indexOf(":");
	const [kind, value] = colon < 0 ? ["username", arg] : [arg.slice(0, colon) as IdentityKind, arg.slice(colon + 1)];
	if (!IDENTITY_KINDS.includes(kind as IdentityKind)) throw new Error(`give a user id, a username or ${IDENTITY_KINDS.join("|")}:<value>`);
	const { userId } = await broker.call<{ userId: string }, unknown>("sv-region.resolve", { kind, value });
	return userId;
}
