import { createHash, createPrivateKey, generateKeyPair } from "node:crypto";
import { promisify } from "node:util";
import type { Kysely } from "kysely";
import type { PiiKeys } from "../../kernel/sealing.ts";
import { open, seal } from "../../kernel/sealing.ts";
import { keyId } from "./key-id.ts";
import type { PublicJwk } from "./key-ring.ts";
import type { SigningKey } from "./tokens.ts";

export interface KeyRow {
	generation: number;
	kid: string;
	public_jwk: string;
	private_sealed: string;
	sealed_kid: string;
	state: "next" | "active" | "retired";
	created_at: number;
	activates_at: number;
	retires_at: number | null;
}

export interface KeyTables {
	auth_keys: KeyRow;
}

export interface KeyPolicy {
	/** An active key older than this gets a successor. */
	rotateAfterMs: number;
	/** A successor is published this long before it signs, so every region trusts it first. */
	publishLeadMs: number;
	/** A replaced key stays published this long: until the last token it signed has expired. */
	retireAfterMs: number;
}

export interface KeySet {
	signer: SigningKey | undefined;
	published: PublicJwk[];
	/** Changes whenever `published` does. */
	version: string;
	/** When the signer is next replaced (ms): its published successor's activation, else its own plus the rotation period. */
	rotatesAt: number | undefined;
}

const generateEc = promisify(generateKeyPair);

/**
 * This region's signing keys, kept in its database so every node of the region signs with the
 * same one. A key's life: `next` (published, not signing) → `active` (signing) → `retired`
 * (published until its tokens expire) → deleted. Every step is a conditional write, so any
 * number of nodes may run `tick` at once.
 */
export class SigningKeys {
	private readonly db: Kysely<KeyTables>;
	private readonly region: string;
	private readonly sealing: PiiKeys;
	private readonly policy: KeyPolicy;

	constructor(db: Kysely<any>, region: string, sealing: PiiKeys, policy: KeyPolicy) {
		this.db = db;
		this.region = region;
		this.sealing = sealing;
		this.policy = policy;
	}

	/** Adds generation `generation` in `state`; false if another node added it first. */
	private async add(generation: number, state: KeyRow["state"], activatesAt: number, now: number): Promise<boolean> {
		const { publicKey, privateKey } = await generateEc("ec", { namedCurve: "P-256" });
		const kid = keyId(this.region, generation);
		const jwk: PublicJwk = { ...publicKey.export({ format: "jwk" }), kid, alg: "ES256", use: "sig" };
		const sealed = seal(this.sealing, privateKey.export({ format: "pem", type: "pkcs8" }).toString(), {
			table: "auth_keys",
			field: "private_sealed",
			row: kid
		});
		try {
			await this.db
				.insertInto("auth_keys")
				.values({
					generation,
					kid,
					public_jwk: JSON.stringify(jwk),
					private_sealed: sealed.value,
					sealed_kid: sealed.kid,
					state,
					created_at: now,
					activates_at: activatesAt,
					retires_at: null
				})
				.execute();
			return true;
		} catch (err) {
			if (await this.db.selectFrom("auth_keys").select("generation").where("generation", "=", generation).executeTakeFirst()) return false;
			throw err;
		}
	}

	private rows(): Promise<KeyRow[]> {
		return this.db.selectFrom("auth_keys").selectAll().orderBy("generation").execute() as Promise<KeyRow[]>;
	}

	/** Publishes a successor now (ops: `auth-jwt.rotateKeys`); it signs after the publish lead. */
	async rotate(now = Date.now()): Promise<{ kid: string; activatesAt: number }> {
		const rows = await this.rows();
		const pending = rows.find(r => r.state === "next");
		if (pending) return { kid: pending.kid, activatesAt: Number(pending.activates_at) };
		const generation = (rows.at(-1)?.generation ?? 0) + 1;
		await this.add(generation, "next", now + this.policy.publishLeadMs, now);
		return this.rotate(now);
	}

	/** Moves every key along its life; a region without any key gets its first, active at once. */
	async tick(now = Date.now()): Promise<void> {
		let rows = await this.rows();
		if (!rows.some(r => r.state === "active" || r.state === "next")) {
			// Nothing was ever signed here, so nobody needs to learn the key first.
			await this.add((rows.at(-1)?.generation ?? 0) + 1, "active", now, now);
			rows = await this.rows();
		}
		const active = rows.filter(r => r.state === "active").at(-1);
		const next = rows.find(r => r.state === "next");
		if (next && Number(next.activates_at) <= now) {
			const promoted = await this.db
				.updateTable("auth_keys")
				.set({ state: "active" })
				.where("generation", "=", next.generation)
				.where("state", "=", "next")
				.executeTakeFirst();
			if (Number(promoted.numUpdatedRows) === 1)
				await this.db
					.updateTable("auth_keys")
					.set({ state: "retired", retires_at: now + this.policy.retireAfterMs })
					.where("state", "=", "active")
					.where("generation", "<", next.generation)
					.execute();
		} else if (!next && active && now - Number(active.activates_at) >= this.policy.rotateAfterMs) {
			await this.rotate(now);
		}
		await this.db.deleteFrom("auth_keys").where("state", "=", "retired").where("retires_at", "<=", now).execute();
	}

	async load(): Promise<KeySet> {
		const rows = await this.rows();
		const active = rows.filter(r => r.state === "active").at(-1);
		const published = rows.map(r => JSON.parse(r.public_jwk) as PublicJwk);
		const version = createHash("sha256")
			.update(rows.map(r => `${r.kid}:${r.state}`).join(","))
			.digest("base64url")
			.slice(0, 16);
		const signer = active
			? {
					kid: active.kid,
					privateKey: createPrivateKey(
						open(this.sealing, active.sealed_kid, active.private_sealed, { table: "auth_keys", field: "private_sealed", row: active.kid })
					)
				}
			: undefined;
		const next = rows.find(r => r.state === "next");
		const rotatesAt = next ? Number(next.activates_at) : active ? Number(active.activates_at) + this.policy.rotateAfterMs : undefined;
		return { signer, published, version, rotatesAt };
	}
}
