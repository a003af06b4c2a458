import { Errors } from "moleculer";

/** Stable types of every channel error, with the HTTP-like code a gateway would answer. */
const CODES = {
	INVALID_CHANNEL_NAME: 400,
	INVALID_CHANNEL_MESSAGE: 400,
	INVALID_CHANNEL_DECLARATION: 500,
	PAYLOAD_TOO_LARGE: 413,
	UNKNOWN_CHANNEL: 404,
	UNKNOWN_REGION: 404,
	DEAD_LETTER_NOT_FOUND: 404,
	CHANNEL_UNAVAILABLE: 503
} as const;

export type ChannelErrorType = keyof typeof CODES;

/** Errors a retry cannot cure: a forwarder dead-letters these at once instead of trying again. */
export const PERMANENT_CHANNEL_ERRORS: ReadonlySet<string> = new Set<ChannelErrorType>([
	"INVALID_CHANNEL_NAME",
	"INVALID_CHANNEL_MESSAGE",
	"PAYLOAD_TOO_LARGE",
	"UNKNOWN_CHANNEL",
	"UNKNOWN_REGION"
]);

export class ChannelError extends Errors.MoleculerError {
	constructor(type: ChannelErrorType, message: string, data?: Record<string, unknown>) {
		super(message, CODES[type], type, data);
		this.name = "ChannelError";
		// Only a store that could not answer is worth asking again; everything else is the caller's input.
		this.retryable = type === "CHANNEL_UNAVAILABLE";
	}
}
