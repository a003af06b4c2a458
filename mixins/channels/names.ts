import { ChannelError } from "./errors.ts";

/** Largest payload, as its JSON text in UTF-8 bytes. */
export const MAX_PAYLOAD_BYTES = 256 * 1024;
export const MAX_KEY_LENGTH = 256;
export const MAX_HEADERS = 32;
export const MAX_HEADER_VALUE_LENGTH = 1024;
export const MAX_NAME_LENGTH = 100;

/**
 * A channel name is lowercase dotted words (`order.created`): each is a NATS subject token and, with
 * "." turned into "_", part of a stream name. Uppercase is kept for the project's own channels
 * (a region's outbox), so no service can declare or send to one by accident.
 */
const CHANNEL = /^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*$/;
const INTERNAL_CHANNEL = /^[A-Za-z][A-Za-z0-9-]*(\.[A-Za-z][A-Za-z0-9-]*)*$/;
const GROUP = /^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/;
const HEADER = /^[A-Za-z0-9-]{1,64}$/;
/** Message ids become subject tokens (the dead-letter subject), so they stay within this set. */
const MESSAGE_ID = /^[A-Za-z0-9-]{1,64}$/;

export function assertChannelName(name: unknown): asserts name is string {
	if (typeof name !== "string" || name.length > MAX_NAME_LENGTH || !CHANNEL.test(name))
		throw new ChannelError(
			"INVALID_CHANNEL_NAME",
			`invalid channel name "${String(name).slice(0, 80)}": lowercase words of a-z, 0-9 and "-", joined by ".", at most ${MAX_NAME_LENGTH} characters`,
			{ channel: String(name).slice(0, 80) }
		);
}

/** What a store accepts: a service's channel or one of the project's own. */
export function assertStoredChannelName(name: string): void {
	if (name.length > MAX_NAME_LENGTH || !INTERNAL_CHANNEL.test(name))
		throw new ChannelError("INVALID_CHANNEL_NAME", `invalid channel name "${name.slice(0, 80)}"`, { channel: name.slice(0, 80) });
}

export function isGroupName(name: unknown): name is string {
	return typeof name === "string" && GROUP.test(name);
}

/** A service's full name (`v2.sv-user`) made into a group name (`v2-sv-user`). */
export function groupOfService(fullName: string): string {
	return fullName.replace(/[^A-Za-z0-9-]/g, "-").slice(0, 64);
}

export function assertMessageId(id: unknown): asserts id is string {
	if (typeof id !== "string" || !MESSAGE_ID.test(id)) throw invalidMessage(`invalid message id "${String(id).slice(0, 80)}"`);
}

export function assertKey(key: unknown): void {
	if (key === undefined) return;
	if (typeof key !== "string" || key.length === 0 || key.length > MAX_KEY_LENGTH)
		throw invalidMessage(`a message key is a string of 1 to ${MAX_KEY_LENGTH} characters`);
}

export function assertHeaders(headers: unknown): asserts headers is Record<string, string> {
	if (headers === null || typeof headers !== "object" || Array.isArray(headers)) throw invalidMessage("message headers are an object of strings");
	const entries = Object.entries(headers);
	if (entries.length > MAX_HEADERS) throw invalidMessage(`at most ${MAX_HEADERS} message headers`);
	for (const [name, value] of entries) {
		if (!HEADER.test(name)) throw invalidMessage(`invalid header name "${name.slice(0, 80)}": 1 to 64 of A-Z, a-z, 0-9 and "-"`);
		if (typeof value !== "string" || value.length > MAX_HEADER_VALUE_LENGTH)
			throw invalidMessage(`header "${name}" must be a string of at most ${MAX_HEADER_VALUE_LENGTH} characters`);
	}
}

/** The payload as JSON text, within MAX_PAYLOAD_BYTES. */
export function encodePayload(channel: string, payload: unknown): string {
	let text: string | undefined;
	try {
		text = JSON.stringify(payload);
	} catch (err) {
		throw invalidMessage(`the payload is not JSON-serialisable: ${(err as Error).message}`);
	}
	if (text === undefined) throw invalidMessage("the payload is not JSON-serialisable (undefined or a function)");
	const bytes = Buffer.byteLength(text);
	if (bytes > MAX_PAYLOAD_BYTES)
		throw new ChannelError("PAYLOAD_TOO_LARGE", `the payload for channel "${channel}" is ${bytes} bytes; the limit is ${MAX_PAYLOAD_BYTES}`, {
			channel,
			bytes,
			limit: MAX_PAYLOAD_BYTES
		});
	return text;
}

function invalidMessage(message: string): ChannelError {
	return new ChannelError("INVALID_CHANNEL_MESSAGE", message);
}
