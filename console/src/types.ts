/**
 * The API's answers the console reads, as the gateway's OpenAPI document describes them (GET
 * /api/v1/openapi.json), written as the client sees them: every field JSON, amounts in minor units.
 */

export type Profile = { id: string; username: string; email: string | null; phone: string | null; country: string | null; region: string; createdAt: string };

export type UserPage = { items: Profile[]; total: number; page: number; pageSize: number; region: string };

export type StaffUser = Profile & { epoch: number; state: "active" | "moving"; roles: string[] };

export type Session = { sid: string; client: string; createdAt: string; lastUsedAt: string };

type Balance = { currency: string; balance: string; available: string; pending: string };

export type Wallet = { userId: string; frozen: boolean; balances: Balance[] };

type Entry = { id: string; currency: string; amount: string; kind: string; counterparty: string | null; memo: string | null; createdAt: string };

export type EntryPage = { items: Entry[]; nextCursor: string | null };

type StoredFile = { id: string; name: string; size: number; contentType: string; createdAt: string };

export type FilePage = { usage: { files: number; usedBytes: number; quotaBytes: number }; items: StoredFile[]; nextCursor: string | null };

export type AuditRecord = {
	region: string;
	seq: number;
	at: string;
	actor: string;
	action: string;
	target: string | null;
	outcome: "success" | "failure" | "refused";
};

export type AuditPage = { items: AuditRecord[]; nextCursor: string | null; unavailable: string[] };

export type MoveProgress = {
	moveId: string;
	from: string;
	to: string;
	state: "running" | "moved" | "rolled-back" | "failed";
	step?: string;
	error?: string;
	finishedAt?: number;
};

export type Region = { id: string; name: string; status: "up" | "down" | "unknown"; countries: string[]; residency: string[] };

export type RegionNodes = { region: string; nodes: { id: string; group: string | null; services: string[] }[] };

export type Census = { users: Record<string, number>; total: number; complete: boolean };

type Letter = { id: string; channel: string; userId: string; title: string; error: string; errorType: string | null; attempts: number; at: string };

export type DeadLetters = { region: string; items: Letter[] };

export type Roles = { roles: { role: string; inherits: string[] }[] };
