import { Errors } from "moleculer";

/** What sv-oss answers besides its parameter checks. Types are the stable codes clients see. */

/** The caller's own file of this id (another user's is not found either). */
export class FileNotFoundError extends Errors.MoleculerClientError {
	constructor(id: string) {
		super(`no file ${id}`, 404, "FILE_NOT_FOUND", { id });
	}
}

export class FileTooLargeError extends Errors.MoleculerClientError {
	constructor(maxBytes: number) {
		super(`a file may hold at most ${maxBytes} bytes`, 413, "FILE_TOO_LARGE", { maxBytes });
	}
}

export class QuotaExceededError extends Errors.MoleculerClientError {
	constructor(quotaBytes: number, usedBytes: number) {
		super(`this file would take the caller past its quota of ${quotaBytes} bytes (${usedBytes} used)`, 409, "QUOTA_EXCEEDED", { quotaBytes, usedBytes });
	}
}

/** The bytes are of a type not on the allow-list (or of none recognised). */
export class FileTypeNotAllowedError extends Errors.MoleculerClientError {
	constructor(detected: string) {
		super(`files of type ${detected} are not accepted`, 415, "FILE_TYPE_NOT_ALLOWED", { detected });
	}
}

/** The declared type is not what the bytes are. */
export class FileTypeMismatchError extends Errors.MoleculerClientError {
	constructor(declared: string, detected: string) {
		super(`the file was declared ${declared} but its bytes are ${detected}`, 415, "FILE_TYPE_MISMATCH", { declared, detected });
	}
}

export class FileNameInvalidError extends Errors.MoleculerClientError {
	constructor(reason: string) {
		super(`file name refused: ${reason}`, 400, "FILE_NAME_INVALID", { reason });
	}
}

/** The body ended before its declared length, or was not a well-formed upload. */
export class UploadInvalidError extends Errors.MoleculerClientError {
	constructor(reason: string) {
		super(`upload refused: ${reason}`, 400, "UPLOAD_INVALID", { reason });
	}
}

/** A download link that was altered, is not ours, or names a file whose content has changed. */
export class LinkInvalidError extends Errors.MoleculerClientError {
	constructor() {
		super("this download link is not valid", 403, "LINK_INVALID");
	}
}

export class LinkExpiredError extends Errors.MoleculerClientError {
	constructor() {
		super("this download link has expired", 403, "LINK_EXPIRED");
	}
}

export class RangeNotSatisfiableError extends Errors.MoleculerClientError {
	constructor(size: number) {
		super(`the range asked for is outside the file's ${size} bytes`, 416, "RANGE_NOT_SATISFIABLE", { size });
	}
}

/** A paced transfer (pacing.ts) this node does not hold: finished, aborted, expired, or held by a node that restarted. */
export class TransferSessionNotFoundError extends Errors.MoleculerClientError {
	constructor(id: string) {
		super(`no transfer ${id} here: finished, aborted or expired`, 404, "TRANSFER_SESSION_NOT_FOUND", { id });
	}
}

/** A part out of order beyond the window, sent twice, or announced count not the parts sent. */
export class TransferPartInvalidError extends Errors.MoleculerClientError {
	constructor(reason: string) {
		super(`transfer part refused: ${reason}`, 400, "TRANSFER_PART_INVALID", { reason });
	}
}

/** The node holds as many transfers as EDGEHOME_OSS_MAX_TRANSFERS allows. */
export class TransfersBusyError extends Errors.MoleculerError {
	constructor(max: number) {
		super(`this node holds ${max} transfers already`, 503, "TRANSFERS_BUSY", { max, retryAfter: 1 });
	}
}

/** What a client sees when a transfer between its gateway and the home broke off (the home restarted, a part expired, the node was busy). */
export class TransferInterruptedError extends Errors.MoleculerError {
	constructor(reason: string) {
		super(`the transfer to the file's home region broke off (${reason}): try again`, 503, "TRANSFER_INTERRUPTED", { reason, retryAfter: 1 });
	}
}
