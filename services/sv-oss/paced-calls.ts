import type { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream";
import type { ServiceBroker } from "moleculer";
import { fromDirectoryFailure } from "../../regions/errors.ts";
import { regionRuntimeOf } from "../../regions/runtime/region-runtime.ts";
import { TransferInterruptedError } from "./errors.ts";
import type { FileView } from "./files.ts";
import { callHome, servedInProcess } from "./home-calls.ts";
import { HeldBytes, PART_BYTES, WINDOW } from "./pacing.ts";
import { fromWire } from "./wire.ts";

/**
 * A gateway's uploads and downloads with the file's home: handed over as a stream when sv-oss runs
 * in this process for the home region (nothing crosses the bus), paced part by part otherwise
 * (pacing.ts): the gateway reads the client no faster than the home stores, and asks the home for
 * bytes no faster than the client takes them.
 */

/** Bytes the paced transfers of this process hold at the gateway end: parts read and not yet answered, parts received and not yet taken by the client. */
export const GATEWAY_HELD = { upload: new HeldBytes(), download: new HeldBytes() };

export interface PacedOptions {
	/** Bound of an upload's last step (the store's final writes and the row) and of each transfer's opening. */
	timeout: number;
	/** The home drops a transfer idle this long (EDGEHOME_OSS_TRANSFER_IDLE_MS): a part's bound, and how often a slow client's bytes are sent on. */
	idleMs: number;
	requestID?: string;
}

interface UploadParams {
	userId: string;
	name: string;
	contentType?: string;
	length?: number;
}

interface ReadParams {
	userId: string;
	id: string;
	start?: number;
	end?: number;
}

/** What the home answers when a paced transfer opens: where its parts go. */
interface Opened {
	nodeID: string;
	region: string;
}

const SESSION_FAILURES = new Set(["TRANSFER_SESSION_NOT_FOUND", "TRANSFER_PART_INVALID", "TRANSFERS_BUSY"]);

/** A failure of the pacing itself as the client sees it (503, retry); the home's refusals (too large, quota…) as they are. */
function asClientSees(err: unknown): unknown {
	const type = (err as { type?: string }).type;
	return type && SESSION_FAILURES.has(type) ? new TransferInterruptedError((err as Error).message) : err;
}

/** True when the user's home region is this one and its sv-oss runs in this process. */
async function servedHere(broker: ServiceBroker, userId: string, action: string): Promise<boolean> {
	const home = await regionRuntimeOf(broker).directory.home(userId).catch(fromDirectoryFailure);
	return servedInProcess(broker, home?.region, action);
}

/** Calls `action` at the node a transfer opened on, through the link when in another region. */
function atHome(broker: ServiceBroker, opened: Opened, requestID: string | undefined) {
	const runtime = regionRuntimeOf(broker);
	return <T>(action: string, params: object, timeout: number) =>
		runtime.call<T>(opened.region, action, params, { nodeID: opened.nodeID, timeout, retries: 0, ...(requestID ? { requestID } : {}) });
}

/**
 * `bytes` in parts of PART_BYTES; a shorter part (maybe empty) when none filled for `everyMs`, so the
 * home hears from a slow client's upload before it would drop it as idle.
 */
async function* partsOf(bytes: Readable, everyMs: number): AsyncGenerator<Buffer> {
	const pieces = bytes[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
	const pending: Buffer[] = [];
	let have = 0;
	const take = (n: number): Buffer => {
		const part = Buffer.allocUnsafe(n);
		let at = 0;
		while (at < n) {
			const piece = pending.shift()!;
			const copied = piece.copy(part, at, 0, n - at);
			at += copied;
			if (copied < piece.length) pending.unshift(piece.subarray(copied));
		}
		have -= n;
		return part;
	};
	let next = pieces.next();
	for (;;) {
		let timer: NodeJS.Timeout | undefined;
		const tick = new Promise<"tick">(resolve => (timer = setTimeout(() => resolve("tick"), everyMs)));
		const got = await Promise.race([next, tick]);
		clearTimeout(timer);
		if (got === "tick") {
			yield take(have);
			continue;
		}
		if (got.done) break;
		pending.push(got.value);
		have += got.value.length;
		next = pieces.next();
		while (have >= PART_BYTES) yield take(PART_BYTES);
	}
	if (have) yield take(have);
}

/**
 * Uploads `bytes` as the user's file at its home; the answer is sv-oss.upload's. Across the bus:
 * at most WINDOW parts unanswered, so a home that stores slowly slows the reading of the client.
 */
export async function uploadHome(broker: ServiceBroker, params: UploadParams, bytes: Readable, opts: PacedOptions): Promise<FileView> {
	const callOpts = { timeout: opts.timeout, ...(opts.requestID ? { requestID: opts.requestID } : {}) };
	if (await servedHere(broker, params.userId, "sv-oss.upload")) return callHome<FileView>(broker, params.userId, "sv-oss.upload", params, callOpts, bytes);
	const opened = await callHome<Opened & { uploadId: string }>(broker, params.userId, "sv-oss.uploadBegin", params, callOpts).catch(err => {
		throw asClientSees(err);
	});
	const call = atHome(broker, opened, opts.requestID);
	const { uploadId } = opened;
	const flight = new Set<Promise<void>>();
	let failure: unknown;
	let seq = 0;
	try {
		for await (const part of partsOf(bytes, opts.idleMs / 3)) {
			if (flight.size >= WINDOW) await Promise.race(flight);
			if (failure) throw failure;
			GATEWAY_HELD.upload.add(part.length);
			const sent: Promise<void> = call("sv-oss.uploadPart", { uploadId, seq: seq++, data: part.toString("base64") }, opts.idleMs)
				.then(
					() => undefined,
					err => void (failure ??= err)
				)
				.finally(() => {
					GATEWAY_HELD.upload.drop(part.length);
					flight.delete(sent);
				});
			flight.add(sent);
		}
		await Promise.all(flight);
		if (failure) throw failure;
		return await call<FileView>("sv-oss.uploadEnd", { uploadId, parts: seq }, opts.timeout);
	} catch (err) {
		await Promise.all(flight);
		// Told so it lets go at once; else it would when the transfer is idle too long.
		await call("sv-oss.uploadAbort", { uploadId }, opts.idleMs).catch(() => undefined);
		throw asClientSees(err);
	}
}

/** Resolves once `res` can take more (or has closed). */
function drained(res: Writable): Promise<void> {
	return new Promise(resolve => {
		const go = () => {
			res.off("drain", go).off("close", go);
			resolve();
		};
		res.on("drain", go).on("close", go);
	});
}

/**
 * Writes the user's file (or bytes `start`…`end`) to `res` and ends it. Across the bus the next part
 * is asked for only once the client has taken one (at most WINDOW asked or waiting). A failure
 * before a byte was written is thrown; a later one cuts the response short, and is thrown too.
 */
export async function downloadHome(broker: ServiceBroker, params: ReadParams, res: Writable, opts: PacedOptions): Promise<void> {
	const callOpts = opts.requestID ? { requestID: opts.requestID } : {};
	if (await servedHere(broker, params.userId, "sv-oss.read")) {
		const bytes = await callHome<Readable>(broker, params.userId, "sv-oss.read", params, callOpts);
		return new Promise((resolve, reject) => pipeline(fromWire(bytes), res, err => (err ? reject(err) : resolve())));
	}
	const opened = await callHome<Opened & { downloadId: string; parts: number }>(broker, params.userId, "sv-oss.downloadOpen", params, {
		...callOpts,
		timeout: opts.timeout
	}).catch(err => {
		throw asClientSees(err);
	});
	const call = atHome(broker, opened, opts.requestID);
	const { downloadId, parts } = opened;
	const asked: Promise<Buffer>[] = [];
	let seq = 0;
	const ask = () => {
		const part = call<{ data: string }>("sv-oss.downloadPart", { downloadId, seq: seq++ }, opts.idleMs).then(r => {
			const bytes = Buffer.from(r.data, "base64");
			GATEWAY_HELD.download.add(bytes.length);
			return bytes;
		});
		// Awaited in turn, maybe after it failed.
		part.catch(() => undefined);
		asked.push(part);
	};
	let written = 0;
	try {
		while (seq < Math.min(WINDOW, parts)) ask();
		for (; written < parts; written++) {
			const bytes = await asked.shift()!;
			if (res.destroyed) {
				GATEWAY_HELD.download.drop(bytes.length);
				throw new Error("the client went away");
			}
			// Counted until the response has taken it (its buffer below its high-water mark again).
			if (!res.write(bytes) && !res.destroyed) await drained(res);
			GATEWAY_HELD.download.drop(bytes.length);
			if (seq < parts) ask();
		}
		res.end();
	} catch (err) {
		for (const part of asked)
			void part.then(
				bytes => GATEWAY_HELD.download.drop(bytes.length),
				() => undefined
			);
		if (written < parts) await call("sv-oss.downloadClose", { downloadId }, opts.idleMs).catch(() => undefined);
		throw asClientSees(err);
	}
}
