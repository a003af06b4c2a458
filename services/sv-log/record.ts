import { hash } from "node:crypto";
import type { AuditOutcome } from "../../mixins/audit.mixin.ts";

/** One stored record of a region's audit log: a link of that region's hash chain. */
export interface LogRecord {
	region: string;
	/** Position in the region's chain, from 1, without gaps. */
	seq: number;
	/** The channel message's id: a record delivered twice is stored once. */
	id: string;
	/** When it happened (ms since the epoch), as its producer saw it. */
	at: number;
	actor: string;
	action: string;
	target: string | null;
	outcome: AuditOutcome;
	requestId: string | null;
	traceId: string | null;
	/** The client IP as a keyed hash (mixins/audit.mixin.ts), never the IP. */
	ipHash: string | null;
	detail: Record<string, unknown> | null;
	/** When sv-log stored it. */
	loggedAt: number;
	/** The previous record's hash (GENESIS for the first one). */
	prevHash: string;
	/** SHA-256 of the canonical JSON of every other field. */
	hash: string;
}

/** The link before a region's first record. */
export const GENESIS = "0".repeat(64);

/** JSON with object keys sorted at every depth and no spaces: one text per value, whatever order it was built in. */
export function canonicalJson(value: unknown): string {
	if (value === null || typeof value !== "object") return JSON.stringify(value);
	if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
	const object = value as Record<string, unknown>;
	let members = "";
	// Object.keys' default sort compares UTF-16 code units, as `<` does.
	for (const key of Object.keys(object).sort()) {
		const v = object[key];
		if (v !== undefined) members += `${members ? "," : ""}${JSON.stringify(key)}:${canonicalJson(v)}`;
	}
	return `{${members}}`;
}

const json = JSON.stringify;

/**
 * The hash a record must carry: SHA-256 over canonicalJson of everything it holds but the hash
 * itself, its link to the previous record included. The text is written out in canonicalJson's
 * (sorted) field order, only the detail being walked: the chain's hot path, run for every record
 * stored and verified.
 */
export function hashOf(r: Omit<LogRecord, "hash">): string {
	const text =
		`{"action":${json(r.action)},"actor":${json(r.actor)},"at":${json(r.at)},"detail":${canonicalJson(r.detail)},"id":${json(r.id)},` +
		`"ipHash":${json(r.ipHash)},"loggedAt":${json(r.loggedAt)},"outcome":${json(r.outcome)},"prevHash":${json(r.prevHash)},` +
		`"region":${json(r.region)},"requestId":${json(r.requestId)},"seq":${json(r.seq)},"target":${json(r.target)},"traceId":${json(r.traceId)}}`;
	return hash("sha256", text);
}

/** A record as the API shows it: its time as ISO 8601, without what only verification needs. */
export function recordView(r: LogRecord) {
	const { at, loggedAt: _stored, prevHash: _linked, ...shown } = r;
	return { ...shown, at: new Date(at).toISOString() };
}

export type RecordView = ReturnType<typeof recordView>;

/**
 * Where a page ended, in the order every query lists records: newest first, then by region
 * (descending), then by chain position (descending). One order for one region and for every
 * region merged, so one cursor serves both.
 */
export interface Position {
	at: number;
	region: string;
	seq: number;
}

export const CURSOR = /^(\d{1,15})\.(\d{1,15})\.([a-z][a-z0-9-]{0,31})$/;

export const cursorOf = (p: Position): string => `${p.at}.${p.seq}.${p.region}`;

export function parseCursor(cursor: string): Position {
	const [, at, seq, region] = CURSOR.exec(cursor)!;
	return { at: Number(at), seq: Number(seq), region: region! };
}

/** Whether `r` comes after `p` in listing order. */
export function isAfter(r: Position, p: Position): boolean {
	if (r.at !== p.at) return r.at < p.at;
	if (r.region !== p.region) return r.region < p.region;
	return r.seq < p.seq;
}

/** Listing order: newest first, then region, then chain position, each descending. */
export function byListingOrder(a: Position, b: Position): number {
	return isAfter(a, b) ? 1 : isAfter(b, a) ? -1 : 0;
}
