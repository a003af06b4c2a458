import type { IncomingMessage, ServerResponse } from "node:http";
import type { Readable } from "node:stream";
import busboy from "busboy";
import { Errors } from "moleculer";
import { userId } from "../kernel/fields.ts";
import { declared } from "../mixins/gateway/declared-errors.ts";
import type { GatewayContext, GatewayRoute, GatewayService } from "../mixins/gateway/routes.ts";
import { envInt } from "../regions/runtime/env.ts";
import { SERVICE_CALL_FAILURES } from "./gateway-errors.ts";
import {
	FileNameInvalidError,
	FileNotFoundError,
	FileTooLargeError,
	FileTypeMismatchError,
	FileTypeNotAllowedError,
	LinkExpiredError,
	LinkInvalidError,
	QuotaExceededError,
	RangeNotSatisfiableError,
	TransferInterruptedError,
	UploadInvalidError
} from "./sv-oss/errors.ts";
import type { FileView } from "./sv-oss/files.ts";
import { fileLimits } from "./sv-oss/limits.ts";
import { linkTarget } from "./sv-oss/links.ts";
import { attachmentHeader } from "./sv-oss/names.ts";
import type { PacedOptions } from "./sv-oss/paced-calls.ts";
import { downloadHome, uploadHome } from "./sv-oss/paced-calls.ts";
import { LINK_PATH } from "./sv-oss/sv-oss.service.ts";

/**
 * The caller's files over REST, on every gateway: upload (multipart, or the raw body), list,
 * download (ranges, ETag), delete, and download links anyone holding one can open at any region's
 * gateway until it expires. Each is served by sv-oss in the owner's home region; the bytes stream
 * through the gateway without ever being held whole. api-cms adds a user's files and quota use.
 */

const read = { resource: "own-files", action: "read" };
const write = { resource: "own-files", action: "write" };

const limits = fileLimits(process.env);
/** Longest an upload may stream through a gateway to sv-oss in its process; across the bus, the bound of a paced upload's last step and of a download's opening. */
const TRANSFER_TIMEOUT_MS = envInt(process.env, "EDGEHOME_OSS_TRANSFER_TIMEOUT_MS", 300_000, 1000, 3_600_000);
/** The header a raw-body upload names its file in (percent-encoded UTF-8). */
export const FILE_NAME_HEADER = "x-file-name";
const MAX_PAGE = 100;

type Schema = Record<string, unknown>;
const record = (properties: Record<string, Schema>): Schema => ({ type: "object", required: Object.keys(properties), properties });

const fileAnswer = record({
	id: { type: "string" },
	name: { type: "string" },
	size: { type: "integer", minimum: 0 },
	contentType: { type: "string" },
	sha256: { type: "string", pattern: "^[0-9a-f]{64}$" },
	createdAt: { type: "string", format: "date-time" }
});
const pageFields = {
	items: { type: "array", items: fileAnswer },
	nextCursor: { type: ["string", "null"], description: "Pass as `cursor` for the next (older) page; null on the last." }
};
const filePage = record(pageFields);
const linkAnswer = record({
	url: { type: "string", description: "The link's path, on any region's gateway: no token needed to open it." },
	expiresAt: { type: "string", format: "date-time" }
});
const usageAnswer = record({
	userId: { type: "string" },
	files: { type: "integer", minimum: 0 },
	usedBytes: { type: "integer", minimum: 0 },
	quotaBytes: { type: "integer", minimum: 1 }
});
const bytesAnswer = { type: "string", description: "The file's bytes." };

const fileId = { type: "string", length: 36, pattern: /^[0-9a-f-]{36}$/, messages: { stringPattern: "must be a file id" } };
const pageParams = {
	cursor: { type: "string", max: 64, optional: true },
	limit: { type: "number", integer: true, min: 1, max: MAX_PAGE, default: 20, convert: true }
};

const asRaised = (err: { type: string; code: number }) => declared(err, { asRaised: true });
const NOT_FOUND = asRaised(new FileNotFoundError("-"));
const UPLOAD_REFUSALS = [
	asRaised(new FileTooLargeError(0)),
	asRaised(new QuotaExceededError(0, 0)),
	asRaised(new FileTypeNotAllowedError("-")),
	asRaised(new FileTypeMismatchError("-", "-")),
	asRaised(new FileNameInvalidError("-")),
	asRaised(new UploadInvalidError("-"))
];
/** A paced transfer with another node broke off (paced-calls.ts): retry. */
const INTERRUPTED = declared(new TransferInterruptedError("-"));
const LINK_REFUSALS = [asRaised(new LinkInvalidError()), asRaised(new LinkExpiredError())];
const RANGE = asRaised(new RangeNotSatisfiableError(0));
const PARTIAL = { 206: "Part of the file: the one byte range `Range` asked for (`Content-Range` says which)." };

const files = (r: Omit<GatewayRoute, "tag" | "auth">): GatewayRoute => ({ ...r, tag: "files", auth: true });

/** 415 for a body the gateway cannot read as a file (a compressed one: a file is kept as sent). */
function refuseEncoded(req: IncomingMessage): void {
	const encoding = req.headers["content-encoding"]?.trim().toLowerCase();
	if (encoding && encoding !== "identity") throw new Errors.MoleculerClientError("send the file uncompressed", 415, "encoding.unsupported");
}

interface IncomingFile {
	name: string;
	contentType?: string;
	length?: number;
	bytes: Readable;
}

/** The raw body's file: its name from X-File-Name, its type and length from the body's headers. */
function rawFile(req: IncomingMessage): IncomingFile {
	const header = req.headers[FILE_NAME_HEADER];
	let name: string | undefined;
	try {
		name = typeof header === "string" ? decodeURIComponent(header) : undefined;
	} catch {
		name = undefined;
	}
	if (!name) throw new FileNameInvalidError(`a raw upload names its file in ${FILE_NAME_HEADER} (percent-encoded UTF-8)`);
	const length = req.headers["content-length"];
	return { name, contentType: req.headers["content-type"], length: length === undefined ? undefined : Number(length), bytes: req };
}

/** The first file part of a multipart body, as it streams in; other fields are skipped. */
function multipartFile(req: IncomingMessage): Promise<IncomingFile> {
	return new Promise((resolve, reject) => {
		let parser: busboy.Busboy;
		try {
			parser = busboy({ headers: req.headers, limits: { files: 1, fields: 20, fieldSize: 1024, parts: 40, headerPairs: 50 } });
		} catch (err) {
			return reject(new UploadInvalidError((err as Error).message));
		}
		parser.on("file", (_field, bytes, info) => resolve({ name: info.filename ?? "", contentType: info.mimeType, bytes }));
		parser.on("error", err => reject(new UploadInvalidError((err as Error).message)));
		parser.on("close", () => reject(new UploadInvalidError("the multipart body holds no file")));
		req.pipe(parser);
	});
}

/** How a transfer through this gateway is bounded (paced-calls.ts). */
const pacing = (ctx: GatewayContext): PacedOptions => ({ timeout: TRANSFER_TIMEOUT_MS, idleMs: limits.transferIdleMs, requestID: ctx.requestID ?? undefined });

/** One upload: the file's bytes streamed from the request to sv-oss at the user's home (paced across the bus). */
async function upload(service: GatewayService, ctx: GatewayContext, req: IncomingMessage): Promise<FileView> {
	refuseEncoded(req);
	const multipart = /^multipart\/form-data\b/i.test(req.headers["content-type"] ?? "");
	try {
		const file = multipart ? await multipartFile(req) : rawFile(req);
		const params = { userId: ctx.locals.user.id, name: file.name, contentType: file.contentType, length: file.length };
		return await uploadHome(service.broker, params, file.bytes, pacing(ctx));
	} finally {
		// What the service did not read is read and dropped, so the client gets the answer instead of a reset.
		req.unpipe();
		req.resume();
	}
}

/** The one byte range of a `Range` header, or undefined (none, several, or not in bytes: the whole file). */
export function byteRange(header: string | undefined, size: number): { start: number; end: number } | "unsatisfiable" | undefined {
	const m = header === undefined ? null : /^bytes=(\d{0,15})-(\d{0,15})$/.exec(header.trim());
	if (!m || (m[1] === "" && m[2] === "")) return undefined;
	if (m[1] === "") {
		const last = Number(m[2]);
		return last === 0 || size === 0 ? "unsatisfiable" : { start: Math.max(size - last, 0), end: size - 1 };
	}
	const start = Number(m[1]);
	const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
	return start >= size || end < start ? "unsatisfiable" : { start, end };
}

/**
 * Sends a file the caller may read: 304 when `If-None-Match` holds its ETag (its SHA-256), 206 for
 * one range, the whole file otherwise, always as an attachment the browser does not sniff.
 */
async function sendFile(service: GatewayService, ctx: GatewayContext, res: ServerResponse, file: FileView, owner: string): Promise<void> {
	const req = res.req;
	const etag = `"${file.sha256}"`;
	res.setHeader("ETag", etag);
	res.setHeader("Accept-Ranges", "bytes");
	res.setHeader("Cache-Control", "private, no-cache");
	if (req.headers["if-none-match"]?.split(",").some(t => t.trim().replace(/^W\//, "") === etag)) {
		res.statusCode = 304;
		return void res.end();
	}
	const range = byteRange(req.headers.range, file.size);
	if (range === "unsatisfiable") {
		res.setHeader("Content-Range", `bytes */${file.size}`);
		throw new RangeNotSatisfiableError(file.size);
	}
	res.setHeader("Content-Type", file.contentType);
	res.setHeader("Content-Disposition", attachmentHeader(file.name));
	res.setHeader("X-Content-Type-Options", "nosniff");
	res.setHeader("Content-Length", range ? range.end - range.start + 1 : file.size);
	if (range) {
		res.statusCode = 206;
		res.setHeader("Content-Range", `bytes ${range.start}-${range.end}/${file.size}`);
	} else res.statusCode = 200;
	if (req.method === "HEAD" || file.size === 0) return void res.end();
	await downloadHome(service.broker, { userId: owner, id: file.id, ...(range ?? {}) }, res, pacing(ctx)).catch((err: Error) => {
		// Before a byte went out the client gets the error's answer; after, only a response cut short.
		if (!res.headersSent && !res.destroyed) throw err;
		service.logger.warn(`download of file ${file.id} ended early: ${err.message}`);
		res.destroy();
	});
}

export const FILE_ROUTES: readonly GatewayRoute[] = [
	files({
		method: "POST",
		path: "/api/v1/files",
		name: "uploadFile",
		summary: "Upload a file: multipart/form-data (its first file part), or the raw body with its name in X-File-Name",
		description: `The type is told from the bytes and must be one of: ${limits.types.join(", ")}; a declared type (the part's or the body's Content-Type) must agree. At most ${limits.maxFileBytes} bytes, within the caller's quota.`,
		permission: write,
		status: 201,
		response: fileAnswer,
		errors: [...SERVICE_CALL_FAILURES, ...UPLOAD_REFUSALS, INTERRUPTED],
		params: { $$strict: true },
		async handler(ctx, _params, res) {
			const file = await upload(this, ctx, res.req);
			ctx.meta.$location = `/api/v1/files/${file.id}`;
			return file;
		}
	}),
	files({
		method: "GET",
		path: "/api/v1/files",
		name: "myFiles",
		summary: "The caller's files, newest first, a page at a time",
		permission: read,
		status: 200,
		response: filePage,
		errors: SERVICE_CALL_FAILURES,
		params: { $$strict: true, ...pageParams },
		handler(ctx, params: { cursor?: string; limit: number }) {
			return ctx.call("sv-oss.list", { ...params, userId: ctx.locals.user.id });
		}
	}),
	files({
		method: "GET",
		path: "/api/v1/files/:id",
		name: "downloadFile",
		summary: "Download one of the caller's files (one byte range with Range; ETag and If-None-Match)",
		permission: read,
		status: 200,
		response: bytesAnswer,
		mediaTypes: limits.types,
		download: true,
		alsoAnswers: PARTIAL,
		errors: [...SERVICE_CALL_FAILURES, NOT_FOUND, RANGE, INTERRUPTED],
		params: { $$strict: true, id: fileId },
		async handler(ctx, params: { id: string }, res) {
			const owner = ctx.locals.user.id;
			const file = await ctx.call<FileView, unknown>("sv-oss.get", { userId: owner, id: params.id });
			await sendFile(this, ctx, res, file, owner);
		}
	}),
	files({
		method: "DELETE",
		path: "/api/v1/files/:id",
		name: "deleteFile",
		summary: "Delete one of the caller's files (its bytes and its share of the quota)",
		permission: write,
		status: 204,
		errors: [...SERVICE_CALL_FAILURES, NOT_FOUND],
		params: { $$strict: true, id: fileId },
		async handler(ctx, params: { id: string }) {
			await ctx.call("sv-oss.remove", { userId: ctx.locals.user.id, id: params.id });
		}
	}),
	files({
		method: "POST",
		path: "/api/v1/files/:id/links",
		name: "fileLink",
		summary: "A signed download link to one of the caller's files, valid until it expires (or the file changes)",
		permission: read,
		status: 201,
		response: linkAnswer,
		errors: [...SERVICE_CALL_FAILURES, NOT_FOUND],
		params: { $$strict: true, id: fileId, expiresIn: { type: "number", integer: true, min: 1, max: limits.maxLinkSeconds } },
		handler(ctx, params: { id: string; expiresIn: number }) {
			return ctx.call("sv-oss.createLink", { userId: ctx.locals.user.id, id: params.id, expiresIn: params.expiresIn });
		}
	}),
	{
		method: "GET",
		path: `${LINK_PATH}/:token`,
		name: "openFileLink",
		summary: "Download the file a signed link names (any region's gateway; Range and If-None-Match as for the owner)",
		tag: "files",
		auth: false,
		status: 200,
		response: bytesAnswer,
		mediaTypes: limits.types,
		download: true,
		alsoAnswers: PARTIAL,
		errors: [...SERVICE_CALL_FAILURES, ...LINK_REFUSALS, RANGE, INTERRUPTED],
		params: { $$strict: true, token: { type: "string", max: 200 } },
		async handler(ctx, params: { token: string }, res) {
			const { userId: owner } = linkTarget(params.token);
			const file = await ctx.call<FileView, unknown>("sv-oss.openLink", { userId: owner, token: params.token }).catch((err: { type?: string }) => {
				// A link naming a user that does not exist is as invalid as any other forged one.
				throw err.type === "USER_NOT_FOUND" ? new LinkInvalidError() : err;
			});
			await sendFile(this, ctx, res, file, owner);
		}
	}
];

/** api-cms: a user's files and quota use, for support. */
export const ADMIN_FILE_ROUTES: readonly GatewayRoute[] = [
	{
		method: "GET",
		path: "/api/v1/admin/users/:id/files",
		name: "userFiles",
		summary: "A user's files, newest first, and the user's quota use",
		tag: "admin",
		auth: true,
		permission: { resource: "files", action: "read" },
		status: 200,
		response: record({ usage: usageAnswer, ...pageFields }),
		errors: SERVICE_CALL_FAILURES,
		params: { $$strict: true, id: userId, ...pageParams },
		async handler(ctx, params: { id: string; cursor?: string; limit: number }) {
			const usage = await ctx.call("sv-oss.usage", { userId: params.id });
			const page = await ctx.call<{ items: FileView[]; nextCursor: string | null }, unknown>("sv-oss.list", {
				userId: params.id,
				cursor: params.cursor,
				limit: params.limit
			});
			return { usage, ...page };
		}
	}
];
