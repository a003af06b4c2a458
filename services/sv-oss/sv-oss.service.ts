import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream";
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { userId } from "../../kernel/fields.ts";
import { piiKeysFromEnv } from "../../kernel/sealing.ts";
import type { DbVars } from "../../mixins/db.mixin.ts";
import { dbMixin } from "../../mixins/db.mixin.ts";
import { metricsMixin } from "../../mixins/metrics.mixin.ts";
import type { MoveParticipantMethods } from "../../mixins/move-participant.mixin.ts";
import { moveParticipantMixin, movesThrough } from "../../mixins/move-participant.mixin.ts";
import type { HomeMeta } from "../../regions/home-router.ts";
import type { NatsCredentials } from "../../regions/runtime/bus-credentials.ts";
import { envInt } from "../../regions/runtime/env.ts";
import { regionRuntimeOf } from "../../regions/runtime/region-runtime.ts";
import { ByteLimit } from "./byte-limit.ts";
import { declaredType, TypeGate } from "./content-type.ts";
import { DownloadSession } from "./download-session.ts";
import {
	FileNotFoundError,
	FileTooLargeError,
	QuotaExceededError,
	RangeNotSatisfiableError,
	TransferInterruptedError,
	TransferSessionNotFoundError,
	UploadInvalidError
} from "./errors.ts";
import type { FileRow, FileView } from "./files.ts";
import { blobKey, FileRows, fileView } from "./files.ts";
import { openFolderStore } from "./folder-store.ts";
import { ownsHere } from "./home-calls.ts";
import type { FileLimits } from "./limits.ts";
import { fileLimits } from "./limits.ts";
import { checkLink, LINK_TOKEN, linkKey, signLink } from "./links.ts";
import { migrations } from "./migrations.ts";
import type { MovedFile } from "./moves.ts";
import { FileMoves } from "./moves.ts";
import { safeFileName } from "./names.ts";
import { bucketOf, openObjectStore } from "./nats-store.ts";
import { BASE64, PART_BASE64, Sessions } from "./pacing.ts";
import type { BlobStore } from "./store.ts";
import { UploadSession } from "./upload-session.ts";
import { fromWire, toWire } from "./wire.ts";

/** The path a download link is served at, on every gateway. */
export const LINK_PATH = "/api/v1/file-links";

interface Vars extends DbVars<any> {
	files: FileRows;
	blobs: BlobStore;
	moves: FileMoves;
	limits: FileLimits;
	linkKey: Buffer;
	/** A folder made for an embedded region without a data folder, removed when the service stops. */
	scratch?: string;
	/** Paced uploads and downloads this node is the home end of (pacing.ts). */
	uploads: Sessions<UploadSession>;
	downloads: Sessions<DownloadSession>;
}

type Methods = MoveParticipantMethods & {
	openBlobs(): Promise<BlobStore>;
	ownRow(userId: string, id: string): Promise<FileRow>;
	admit(params: UploadParams): Promise<Admitted>;
	store(upload: Admitted, bytes: Readable): Promise<FileView>;
	bytesOf(params: ReadParams): Promise<{ bytes: Readable; count: number }>;
};

interface UploadParams {
	userId: string;
	name: string;
	contentType?: string;
	length?: number;
}

/** An upload whose name and announced length passed, with the room the user has left. */
interface Admitted extends UploadParams {
	room: number;
	refusal(bytes: number): Error;
}

interface ReadParams {
	userId: string;
	id: string;
	start?: number;
	end?: number;
}

const fileId = { type: "string", length: 36, pattern: /^[0-9a-f-]{36}$/, messages: { stringPattern: "must be a file id" } } as const;
const offset = { type: "number", integer: true, min: 0, optional: true } as const;
const transferId = { type: "uuid", version: 4 } as const;
/** A part's number: a transfer has at most maxFileBytes / PART_BYTES of them (2^31 is far beyond any). */
const partSeq = { type: "number", integer: true, min: 0, max: 2 ** 31 } as const;
const uploadParams = {
	$$strict: true,
	userId,
	name: { type: "string", min: 1, max: 4096 },
	contentType: { type: "string", max: 200, optional: true },
	length: { type: "number", integer: true, min: 0, optional: true }
} as const;
const readParams = { $$strict: true, userId, id: fileId, start: offset, end: offset } as const;
const MAX_PAGE = 100;
/** A move streams the user's files region to region in its export and import: up to the quota (1 GB by default) in one call. */
const FILES_COPY_TIMEOUT_MS = 300_000;
/** A read of the user's files, served while the user moves. */
const read = { param: "userId", readonly: true } as const;

/**
 * Files: bytes in the home region's blob store (the region's NATS Object Store, or the data folder
 * embedded), a row each in the region's SQL store, a quota per user. Uploads and downloads are
 * streamed (home-calls.ts routes them home), from a gateway on another node part by part at the
 * pace of the slower end (pacing.ts): nothing holds a whole file in memory. A move
 * participant: the new home streams the bytes from the old one, digest checked.
 */
const svOss: ServiceSchema<ServiceSettingSchema, Methods, Vars> = {
	name: "sv-oss",
	mixins: [dbMixin(migrations), moveParticipantMixin({ copyTimeoutMs: FILES_COPY_TIMEOUT_MS }), metricsMixin()],

	hooks: {
		before: {
			/** The bytes come before the rows, outside the fenced import: a copy of many megabytes holds no transaction open. */
			async "move.import"(this: any, ctx: Context<{ userId: string; rows: MovedFile[] }>) {
				const runtime = regionRuntimeOf(this.broker);
				await this.moves.fetch(ctx.params.rows, async (file: MovedFile) =>
					fromWire(await runtime.call<Readable>(file.from, "sv-oss.move.read", { userId: file.user_id, id: file.id }, { retries: 0 }))
				);
			},
			async "move.delete"(this: any, ctx: Context<{ userId: string }, object, { keys?: string[] }>) {
				ctx.locals.keys = await this.moves.keysOf(ctx.params.userId);
			}
		},
		after: {
			/** The bytes go once the rows' delete has committed: never a row left without its bytes. */
			async "move.delete"(this: any, ctx: Context<unknown, object, { keys?: string[] }>, res: unknown) {
				await this.moves.dropBlobs(ctx.locals.keys ?? []);
				return res;
			}
		}
	},

	actions: {
		upload: {
			// Only the gateways may store a user's files: anyone else on the bus could fill any user's quota.
			restricted: "files",
			// Routed home by its callers (home-calls.ts): the home router cannot forward a stream.
			params: uploadParams,
			/** `ctx.stream`: the body, as `toWire` sends it (or the bytes as they are, from this process). */
			async handler(ctx: Context<UploadParams>) {
				const admitted = await this.admit(ctx.params);
				if (!ctx.stream) throw new UploadInvalidError("no body");
				return this.store(admitted, fromWire(ctx.stream as Readable));
			}
		},

		// A paced upload (pacing.ts), for a gateway on another node: begin at the home, parts and end at the node begin answered from.
		uploadBegin: {
			restricted: "files",
			// Routed home by its callers (home-calls.ts), as upload is.
			params: uploadParams,
			/** Checks the upload as `upload` does before a byte is read, and opens it: `{uploadId, nodeID, region}` to send its parts to. */
			async handler(ctx: Context<UploadParams>) {
				const admitted = await this.admit(ctx.params);
				const session = new UploadSession();
				const uploadId = this.uploads.add(session);
				session.result = this.store(admitted, session.body);
				// Whatever refuses the upload fails its parts too; the session then ends.
				session.result.then(
					() => this.uploads.remove(uploadId),
					(err: Error) => {
						this.uploads.remove(uploadId);
						session.fail(err);
					}
				);
				return { uploadId, nodeID: this.broker.nodeID, region: regionRuntimeOf(this.broker).region.id };
			}
		},

		uploadPart: {
			restricted: "files",
			params: {
				$$strict: true,
				uploadId: transferId,
				seq: partSeq,
				data: { type: "string", max: PART_BASE64, pattern: BASE64, messages: { stringPattern: "must be base64" } }
			},
			/** Answered once the home has room for more (the store took enough of what came before): the sender's pace. */
			async handler(ctx: Context<{ uploadId: string; seq: number; data: string }>) {
				await this.uploads.get(ctx.params.uploadId).part(ctx.params.seq, Buffer.from(ctx.params.data, "base64"));
				return { accepted: ctx.params.seq };
			}
		},

		uploadEnd: {
			restricted: "files",
			params: { $$strict: true, uploadId: transferId, parts: partSeq },
			/** The upload's file, as `upload` answers it, once its `parts` parts have all come and been stored. */
			handler(ctx: Context<{ uploadId: string; parts: number }>) {
				return this.uploads.get(ctx.params.uploadId).end(ctx.params.parts);
			}
		},

		uploadAbort: {
			restricted: "files",
			params: { $$strict: true, uploadId: transferId },
			/** Drops the upload: what it wrote goes, nothing is counted. */
			handler(ctx: Context<{ uploadId: string }>) {
				this.uploads.end(ctx.params.uploadId, new UploadInvalidError("aborted by the sender"));
				return { aborted: true };
			}
		},

		read: {
			params: readParams,
			/** The file's bytes (or bytes `start`…`end`): as they are to a caller in this process, as `toWire` sends them to others. */
			async handler(ctx: Context<ReadParams>) {
				const { bytes } = await this.bytesOf(ctx.params);
				return ctx.nodeID === this.broker.nodeID ? bytes : toWire(bytes);
			}
		},

		// A paced download (pacing.ts), for a gateway on another node: open at the home, parts and close at the node open answered from.
		downloadOpen: {
			// Restricted as the uploads are: a session holds a reader open on the home until it expires.
			restricted: "files",
			params: readParams,
			/** `{downloadId, nodeID, region, parts}`: the file's (or range's) bytes, to be asked for part by part. */
			async handler(ctx: Context<ReadParams>) {
				const { bytes, count } = await this.bytesOf(ctx.params);
				const session = new DownloadSession(bytes, count);
				let downloadId: string;
				try {
					downloadId = this.downloads.add(session);
				} catch (err) {
					bytes.destroy();
					throw err;
				}
				return { downloadId, nodeID: this.broker.nodeID, region: regionRuntimeOf(this.broker).region.id, parts: session.parts };
			}
		},

		downloadPart: {
			restricted: "files",
			params: { $$strict: true, downloadId: transferId, seq: partSeq },
			/** Part `seq` as base64 (PART_BYTES, the last shorter); the session ends with its last part. */
			async handler(ctx: Context<{ downloadId: string; seq: number }>) {
				const { downloadId, seq } = ctx.params;
				const session = this.downloads.get(downloadId);
				try {
					const bytes = await session.part(seq);
					if (session.done) this.downloads.remove(downloadId);
					return { data: bytes.toString("base64") };
				} catch (err) {
					this.downloads.remove(downloadId);
					session.fail(err as Error);
					throw err;
				}
			}
		},

		downloadClose: {
			restricted: "files",
			params: { $$strict: true, downloadId: transferId },
			/** Ends a download early (its client went away): the reader is let go. */
			handler(ctx: Context<{ downloadId: string }>) {
				this.downloads.end(ctx.params.downloadId, new TransferSessionNotFoundError(ctx.params.downloadId));
				return { closed: true };
			}
		},

		get: {
			home: read,
			params: { $$strict: true, userId, id: fileId },
			async handler(ctx: Context<{ userId: string; id: string }>) {
				return fileView(await this.ownRow(ctx.params.userId, ctx.params.id));
			}
		},

		list: {
			home: read,
			params: {
				$$strict: true,
				userId,
				cursor: { type: "string", max: 64, optional: true },
				limit: { type: "number", integer: true, min: 1, max: MAX_PAGE, default: 20, convert: true }
			},
			async handler(ctx: Context<{ userId: string; cursor?: string; limit: number }>) {
				const page = await this.files.page(ctx.params.userId, ctx.params.cursor, ctx.params.limit);
				return { items: page.items.map(fileView), nextCursor: page.nextCursor };
			}
		},

		usage: {
			home: read,
			params: { $$strict: true, userId },
			async handler(ctx: Context<{ userId: string }>) {
				const user = ctx.params.userId;
				return { userId: user, files: await this.files.countOf(user), usedBytes: await this.files.used(user), quotaBytes: this.limits.quotaBytes };
			}
		},

		remove: {
			restricted: "files",
			// Fenced by its handler: the row goes in the fence's transaction, the bytes after it committed.
			home: { param: "userId", selfFenced: true },
			params: { $$strict: true, userId, id: fileId },
			async handler(ctx: Context<{ userId: string; id: string }, { $home?: HomeMeta }>) {
				const { userId: user, id } = ctx.params;
				const fence = regionRuntimeOf(this.broker).fence;
				const row = await fence.run(user, ctx.meta.$home?.epoch, () => this.files.remove(user, id), true);
				if (!row) throw new FileNotFoundError(id);
				await this.blobs.delete(blobKey(user, id));
				return { deleted: true };
			}
		},

		createLink: {
			// A link opens the file to whoever holds it: signed for the gateways only.
			restricted: "files",
			home: read,
			params: { $$strict: true, userId, id: fileId, expiresIn: { type: "number", integer: true, min: 1 } },
			async handler(ctx: Context<{ userId: string; id: string; expiresIn: number }>) {
				const { userId: user, id } = ctx.params;
				const row = await this.ownRow(user, id);
				const expires = Math.floor(Date.now() / 1000) + Math.min(ctx.params.expiresIn, this.limits.maxLinkSeconds);
				const token = signLink(this.linkKey, { id, userId: user, sha256: row.sha256 }, expires);
				return { url: `${LINK_PATH}/${token}`, expiresAt: new Date(expires * 1000).toISOString() };
			}
		},

		openLink: {
			home: read,
			params: { $$strict: true, userId, token: { type: "string", max: 200, pattern: LINK_TOKEN } },
			/** The file a valid link opens, as it is now; LINK_INVALID or LINK_EXPIRED otherwise. */
			async handler(ctx: Context<{ userId: string; token: string }>) {
				const { userId: user, token } = ctx.params;
				const row = await this.files.get(user, token.slice(0, 36));
				checkLink(this.linkKey, token, row && { id: row.id, userId: row.user_id, sha256: row.sha256 }, Math.floor(Date.now() / 1000));
				return fileView(row!);
			}
		},

		"move.read": {
			restricted: "move",
			params: { $$strict: true, userId, id: fileId },
			/** A moving user's file, for the new home to stream in (served whatever the ownership row says now). */
			async handler(ctx: Context<{ userId: string; id: string }>) {
				const bytes = await this.blobs.get(blobKey(ctx.params.userId, ctx.params.id));
				if (!bytes) throw new FileNotFoundError(ctx.params.id);
				return toWire(bytes);
			}
		}
	},

	methods: {
		async ownRow(user: string, id: string) {
			const row = await this.files.get(user, id);
			if (!row) throw new FileNotFoundError(id);
			return row;
		},

		/** At the home, before a byte is read: the user is ours, the name safe, the length announced (if any) fits. */
		async admit(params: UploadParams): Promise<Admitted> {
			const { userId: user, length } = params;
			const limits = this.limits;
			await ownsHere(this.broker, user);
			const name = safeFileName(params.name, limits.maxNameLength);
			const room = limits.quotaBytes - (await this.files.used(user));
			const refusal = (bytes: number): Error =>
				bytes > limits.maxFileBytes ? new FileTooLargeError(limits.maxFileBytes) : new QuotaExceededError(limits.quotaBytes, limits.quotaBytes - room);
			if (length !== undefined && (length > limits.maxFileBytes || length > room)) throw refusal(length);
			return { ...params, name, room, refusal };
		},

		/**
		 * One admitted upload's bytes: through the size limit and the type check into the blob store;
		 * the row is added in the fence's transaction, with the quota taken atomically. Whatever
		 * refuses it, the blob goes.
		 */
		async store(upload: Admitted, bytes: Readable) {
			const { userId: user, length, room, refusal } = upload;
			const limits = this.limits;
			const counter: ByteLimit = new ByteLimit(Math.min(limits.maxFileBytes, room), () => refusal(counter.count));
			const gate = new TypeGate(declaredType(upload.contentType), limits.types);
			const body = pipeline(bytes, counter, gate, () => undefined) as TypeGate;
			const id = randomUUID();
			const key = blobKey(user, id);
			const stored = await this.blobs.put(key, body);
			try {
				if (length !== undefined && stored.size !== length) throw new UploadInvalidError(`the body held ${stored.size} bytes, not the ${length} announced`);
				const row: FileRow = {
					id,
					user_id: user,
					name: upload.name,
					size: stored.size,
					content_type: gate.type!,
					sha256: stored.sha256,
					created_at: Date.now()
				};
				await regionRuntimeOf(this.broker).fence.run(user, undefined, () => this.files.add(row, limits.quotaBytes), true);
				return fileView(row);
			} catch (err) {
				await this.blobs.delete(key);
				throw err;
			}
		},

		/** The user's file (or bytes `start`…`end` of it) at its home, with the number of bytes it gives. */
		async bytesOf(params: ReadParams) {
			const { userId: user, id, start, end } = params;
			await ownsHere(this.broker, user);
			const row = await this.ownRow(user, id);
			const size = Number(row.size);
			const range = start === undefined ? undefined : { start, end: Math.min(end ?? size - 1, size - 1) };
			if (range && (range.start >= size || range.end < range.start)) throw new RangeNotSatisfiableError(size);
			const bytes = await this.blobs.get(blobKey(user, id), range);
			if (!bytes) throw new FileNotFoundError(id);
			return { bytes, count: range ? range.end - range.start + 1 : size };
		},

		/** The region's NATS Object Store when the node is on NATS; else a folder beside the region's SQLite file (or a scratch one). */
		async openBlobs() {
			const transporter = this.broker.options.transporter as
				| { type?: string; options?: { url?: string; authenticator?: NatsCredentials["authenticator"]; tls?: NatsCredentials["tls"] } }
				| string
				| undefined;
			const env = process.env;
			if (typeof transporter === "object" && transporter?.type === "NATS") {
				// The node's own bus login and CA, as its transporter has them.
				const { url, authenticator, tls } = transporter.options ?? {};
				return openObjectStore({
					servers: url!,
					bucket: bucketOf(this.broker.namespace),
					domain: env.EDGEHOME_NATS_DOMAIN || undefined,
					replicas: envInt(env, "EDGEHOME_OSS_REPLICAS", 1, 1, 5),
					credentials: { ...(authenticator ? { authenticator } : {}), ...(tls ? { tls } : {}) },
					name: `${this.broker.nodeID}-files`
				});
			}
			const runtime = regionRuntimeOf(this.broker);
			const sqlite = runtime.stores.sql.location.startsWith("sqlite:") ? runtime.stores.sql.location.slice("sqlite:".length) : ":memory:";
			if (sqlite !== ":memory:") return openFolderStore(join(dirname(sqlite), `${runtime.region.id}.files`));
			this.scratch = await mkdtemp(join(tmpdir(), `edgehome-files-${runtime.region.id}-`));
			return openFolderStore(this.scratch);
		},

		...movesThrough(service => service.moves)
	},

	async started() {
		this.limits = fileLimits(process.env);
		this.linkKey = linkKey(piiKeysFromEnv(process.env, "sign file download links"));
		this.files = new FileRows(this.db);
		this.blobs = await this.openBlobs();
		this.moves = new FileMoves(this.files, this.blobs, regionRuntimeOf(this.broker).region.id);
		this.uploads = new Sessions(this.limits.maxTransfers, this.limits.transferIdleMs);
		this.downloads = new Sessions(this.limits.maxTransfers, this.limits.transferIdleMs);
	},

	async stopped() {
		const stopping = new TransferInterruptedError("the home node stopped");
		this.uploads?.close(stopping);
		this.downloads?.close(stopping);
		await this.blobs?.close();
		if (this.scratch) await rm(this.scratch, { recursive: true, force: true });
	}
};

export default svOss;
