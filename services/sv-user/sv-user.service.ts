import { randomBytes, randomInt } from "node:crypto";
import { sql } from "kysely";
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { country, email, givenPassword, login, password, phone, regionId, userId, username } from "../../kernel/fields.ts";
import type { PiiKeys, SealedPlace } from "../../kernel/sealing.ts";
import { open, piiKeysFromEnv, seal } from "../../kernel/sealing.ts";
import type { DbVars } from "../../mixins/db.mixin.ts";
import { dbMixin } from "../../mixins/db.mixin.ts";
import type { MoveParticipantMethods } from "../../mixins/move-participant.mixin.ts";
import { moveParticipantMixin } from "../../mixins/move-participant.mixin.ts";
import { newUserId } from "../../regions/directory/entries.ts";
import { sameIdentity } from "../../regions/directory/identity-form.ts";
import {
	IdentityInUseError,
	InvalidCredentialsError,
	LoginNotFoundError,
	NothingToChangeError,
	PasswordHasUsernameError,
	ProfileNotFoundError
} from "./errors.ts";
import { migrations } from "./migrations.ts";
import { decoyHash, hashPassword, verifyPassword } from "./passwords.ts";
import type { PendingRegistrationMethods } from "./pending-registrations.ts";
import { pendingRegistrationsMixin } from "./pending-registrations.ts";

interface UserRow {
	id: string;
	username: string;
	password_hash: string;
	email_enc: string | null;
	email_kid: string | null;
	phone_enc: string | null;
	phone_kid: string | null;
	country: string | null;
	created_at: number;
	updated_at: number;
}

interface Tables {
	users: UserRow;
}

interface Vars extends DbVars<Tables> {
	pii: PiiKeys;
}

export interface Profile {
	id: string;
	username: string;
	email: string | null;
	phone: string | null;
	country: string | null;
	createdAt: string;
}

type Identity = { kind: "username" | "email" | "phone" | "wechat"; value: string };

/** A new user: its row and the identities the directory will resolve to it. */
interface Enrolment {
	username: string;
	passwordHash: string;
	identities: Identity[];
	email?: string;
	phone?: string;
	country?: string;
}

type Methods = MoveParticipantMethods &
	PendingRegistrationMethods & {
		profile(row: UserRow): Profile;
		findLogin(ctx: Context, login: string): Promise<{ userId: string } | undefined>;
		enrol(ctx: Context, entry: Enrolment): Promise<{ id: string; username: string; region: string }>;
	};

const openid = { type: "string", min: 6, max: 64, pattern: /^[A-Za-z0-9_-]+$/ } as const;

const WX_USERNAME_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";
/** Ten random characters of 36: a taken one is rare, a few fresh draws are plenty. */
const WX_USERNAME_RETRIES = 3;

const wxUsername = () => `wx_${Array.from({ length: 10 }, () => WX_USERNAME_ALPHABET[randomInt(WX_USERNAME_ALPHABET.length)]).join("")}`;

/**
 * Which identity a login names: an e-mail has "@", a phone starts with "+", anything else is a
 * username. Told apart in NFKC, so a fullwidth "＠" or "＋" names what its ASCII form does.
 */
function loginIdentity(value: string): Identity {
	const v = value.normalize("NFKC").trim();
	if (v.includes("@")) return { kind: "email", value };
	if (v.startsWith("+")) return { kind: "phone", value };
	return { kind: "username", value };
}

/** A user's sealed e-mail or phone opens only in that user's row and field (a row keeps its id when it moves). */
const sealedPlace = (userId: string, field: "email" | "phone"): SealedPlace => ({ table: "users", field, row: userId });

/** Most users one `list` page holds. */
const MAX_PAGE_SIZE = 100;

/** A LIKE pattern matching what starts with `prefix`, its wildcards taken literally (escape character "!"). */
function likePrefix(prefix: string): string {
	return `${prefix.replace(/[!%_]/g, c => `!${c}`)}%`;
}

/**
 * User profiles, each in its owner's home region: passwords hashed with scrypt, e-mail and phone
 * encrypted at rest, found by login through the directory's blind index. A move participant.
 */
const svUser: ServiceSchema<ServiceSettingSchema, Methods, Vars> = {
	name: "sv-user",
	mixins: [dbMixin<Tables>(migrations), moveParticipantMixin(), pendingRegistrationsMixin()],

	actions: {
		register: {
			params: { $$strict: true, username, password, email, phone, country },
			/**
			 * A new user: USERNAME_TAKEN, EMAIL_TAKEN, PHONE_TAKEN for an identity another user holds.
			 * DIRECTORY_UNAVAILABLE (503, data.retryAfter) means the outcome is unknown: the directory may
			 * still commit the reservation. A retry may then answer USERNAME_TAKEN (or EMAIL_TAKEN…)
			 * until this region's sweeper has undone it: within about 90 s (REGISTRATION_GRACE_MS plus
			 * up to 1.5 sweep intervals, pending-registrations.ts) once the directory answers again.
			 */
			async handler(ctx: Context<{ username: string; password: string; email?: string; phone?: string; country?: string }>) {
				const p = ctx.params;
				if (p.password.toLowerCase().includes(p.username.toLowerCase())) throw new PasswordHasUsernameError();
				const identities: Identity[] = [{ kind: "username", value: p.username }];
				if (p.email) identities.push({ kind: "email", value: p.email });
				if (p.phone) identities.push({ kind: "phone", value: p.phone });
				return this.enrol(ctx, {
					username: p.username,
					passwordHash: await hashPassword(p.password),
					identities,
					email: p.email,
					phone: p.phone,
					country: p.country
				});
			}
		},

		registerWechat: {
			// Binds an openid nobody proved here: only auth-jwt's WeChat login, which checked the code, calls it.
			restricted: "directory",
			visibility: "public",
			params: { $$strict: true, openid },
			/**
			 * A user known only by a WeChat openid, for auth-jwt.wxLogin: a generated username, a
			 * password nobody knows, no country (so homed in the region that received the login).
			 * WECHAT_TAKEN means another login registered this openid first.
			 */
			async handler(ctx: Context<{ openid: string }>) {
				const passwordHash = await hashPassword(randomBytes(32).toString("base64url"));
				for (let retry = 0; ; retry++) {
					const username = wxUsername();
					const identities: Identity[] = [
						{ kind: "username", value: username },
						{ kind: "wechat", value: ctx.params.openid }
					];
					try {
						return await this.enrol(ctx, { username, passwordHash, identities });
					} catch (err) {
						if ((err as { type?: string }).type !== "USERNAME_TAKEN" || retry >= WX_USERNAME_RETRIES) throw err;
					}
				}
			}
		},

		create: {
			// Writes a password hash for a user id: enrolment's second step (deploy/README.md).
			restricted: "directory",
			home: "userId",
			params: { $$strict: true, userId, username, passwordHash: { type: "string", pattern: /^scrypt\$/, max: 160 }, email, phone, country },
			async handler(ctx: Context<{ userId: string; username: string; passwordHash: string; email?: string; phone?: string; country?: string }>) {
				const p = ctx.params;
				const now = Date.now();
				const e = p.email ? seal(this.pii, p.email, sealedPlace(p.userId, "email")) : undefined;
				const ph = p.phone ? seal(this.pii, p.phone, sealedPlace(p.userId, "phone")) : undefined;
				const row: UserRow = {
					id: p.userId,
					username: p.username,
					password_hash: p.passwordHash,
					email_enc: e?.value ?? null,
					email_kid: e?.kid ?? null,
					phone_enc: ph?.value ?? null,
					phone_kid: ph?.kid ?? null,
					country: p.country ?? null,
					created_at: now,
					updated_at: now
				};
				await this.db.insertInto("users").values(row).execute();
				return this.profile(row);
			}
		},

		get: {
			home: { param: "userId", readonly: true },
			params: { $$strict: true, userId },
			async handler(ctx: Context<{ userId: string }>): Promise<Profile> {
				const row = await this.db.selectFrom("users").selectAll().where("id", "=", ctx.params.userId).executeTakeFirst();
				if (!row) throw new ProfileNotFoundError();
				return this.profile(row);
			}
		},

		update: {
			// Changes and releases a user's identities by id alone: the gateways call it for the token's own user.
			restricted: "directory",
			home: "userId",
			params: {
				$$strict: true,
				userId,
				email: { ...email, nullable: true },
				phone: { ...phone, nullable: true },
				country: { ...country, nullable: true }
			},
			/**
			 * Changes e-mail, phone or country (null removes). A new e-mail or phone is reserved in the
			 * directory first and the old one released after the row is written, so a login never
			 * finds nobody, and a failed write gives the new reservation back. Another spelling of the
			 * same identity (case, Unicode form) is no change of identity: only the stored spelling changes.
			 */
			async handler(ctx: Context<{ userId: string; email?: string | null; phone?: string | null; country?: string | null }>): Promise<Profile> {
				const p = ctx.params;
				if (p.email === undefined && p.phone === undefined && p.country === undefined) throw new NothingToChangeError();
				const row = await this.db.selectFrom("users").selectAll().where("id", "=", p.userId).executeTakeFirst();
				if (!row) throw new ProfileNotFoundError();
				const current = this.profile(row);
				const added: Identity[] = [];
				const removed: Identity[] = [];
				for (const kind of ["email", "phone"] as const) {
					const next = p[kind];
					const old = current[kind];
					if (next === undefined || (next !== null && old !== null && sameIdentity(kind, next, old))) continue;
					if (next !== null) added.push({ kind, value: next });
					if (old !== null) removed.push({ kind, value: old });
				}
				if (added.length)
					await ctx.call("sv-region.reserve", { userId: p.userId, identities: added }).catch((err: { type?: string; data?: { kind?: string } }) => {
						if (err.type === "IDENTITY_TAKEN" && err.data?.kind) throw new IdentityInUseError(err.data.kind);
						throw err;
					});
				const changes: Partial<UserRow> = { updated_at: Date.now() };
				for (const kind of ["email", "phone"] as const) {
					const next = p[kind];
					if (next === undefined) continue;
					const sealed = next === null ? null : seal(this.pii, next, sealedPlace(p.userId, kind));
					changes[`${kind}_enc`] = sealed?.value ?? null;
					changes[`${kind}_kid`] = sealed?.kid ?? null;
				}
				if (p.country !== undefined) changes.country = p.country;
				try {
					await this.db.updateTable("users").set(changes).where("id", "=", p.userId).execute();
				} catch (err) {
					if (added.length) await ctx.call("sv-region.release", { userId: p.userId, identities: added }).catch(() => undefined);
					throw err;
				}
				if (removed.length) await ctx.call("sv-region.release", { userId: p.userId, identities: removed });
				return this.profile({ ...row, ...changes });
			}
		},

		verify: {
			// Password checks skip login's throttle: only its steps may guess (deploy/README.md).
			restricted: "login",
			home: { param: "userId", readonly: true },
			params: { $$strict: true, userId, password: givenPassword },
			async handler(ctx: Context<{ userId: string; password: string }>) {
				const row = await this.db.selectFrom("users").select("password_hash").where("id", "=", ctx.params.userId).executeTakeFirst();
				return { ok: (await verifyPassword(ctx.params.password, row?.password_hash ?? (await decoyHash()))) && Boolean(row) };
			}
		},

		/** The user a login (username, e-mail or phone) names, through the directory's blind index. */
		resolveLogin: {
			params: { $$strict: true, login },
			async handler(ctx: Context<{ login: string }>): Promise<{ userId: string }> {
				const found = await this.findLogin(ctx, ctx.params.login);
				if (!found) throw new LoginNotFoundError();
				return found;
			}
		},

		checkPassword: {
			restricted: "login",
			params: { $$strict: true, login, password: givenPassword },
			async handler(ctx: Context<{ login: string; password: string }>) {
				const found = await this.findLogin(ctx, ctx.params.login);
				if (!found) {
					// Same work as a wrong password, so timing does not tell whether the login exists.
					await verifyPassword(ctx.params.password, await decoyHash());
					throw new InvalidCredentialsError();
				}
				const { ok } = await ctx.call<{ ok: boolean }, unknown>("sv-user.verify", { userId: found.userId, password: ctx.params.password });
				if (!ok) throw new InvalidCredentialsError();
				return { userId: found.userId };
			}
		},

		list: {
			home: { region: "region" },
			params: {
				$$strict: true,
				region: regionId,
				q: { type: "string", max: 64, optional: true },
				page: { type: "number", integer: true, min: 1, default: 1, convert: true },
				pageSize: { type: "number", integer: true, min: 1, max: MAX_PAGE_SIZE, default: 20, convert: true }
			},
			/**
			 * The users homed in `region`, from its own database, by username. `q` is a username
			 * prefix, or (with "@", or a leading "+") an exact e-mail or phone found through the
			 * directory's blind index, listed only if that user's row is here.
			 */
			async handler(ctx: Context<{ region: string; q?: string; page: number; pageSize: number }>) {
				const { region, q, page, pageSize } = ctx.params;
				let users = this.db.selectFrom("users");
				if (q && loginIdentity(q).kind !== "username") {
					const found = await this.findLogin(ctx, q);
					if (!found) return { items: [], total: 0, page, pageSize, region };
					users = users.where("id", "=", found.userId);
				} else if (q) users = users.where(sql<boolean>`username like ${likePrefix(q.toLowerCase())} escape '!'`);
				const [rows, count] = await Promise.all([
					users
						.selectAll()
						.orderBy("username")
						.limit(pageSize)
						.offset((page - 1) * pageSize)
						.execute(),
					users.select(eb => eb.fn.countAll().as("n")).executeTakeFirst()
				]);
				const items: (Profile & { region: string })[] = rows.map(row => ({ ...this.profile(row), region }));
				return { items, total: Number(count?.n ?? 0), page, pageSize, region };
			}
		}
	},

	methods: {
		/**
		 * Reserves the identities (assigning the home), writes the row there, and gives the identities
		 * back if that fails. Journaled first: a failure whose outcome is unknown is left to the sweeper.
		 */
		async enrol(ctx: Context, entry: Enrolment) {
			const id = newUserId();
			await this.journalRegistration(id, entry.identities);
			let reserved: { userId: string; region: string };
			try {
				reserved = await ctx.call("sv-region.register", { userId: id, identities: entry.identities, ...(entry.country ? { country: entry.country } : {}) });
			} catch (err) {
				const e = err as { type?: string; data?: { kind?: string } };
				// Refusals leave nothing reserved; any other failure may have, and is left to the sweeper.
				if (e.type === "VALIDATION_ERROR" || e.type === "IDENTITY_TAKEN") await this.registrationSettled(id);
				if (e.type === "IDENTITY_TAKEN" && e.data?.kind) throw new IdentityInUseError(e.data.kind);
				throw err;
			}
			try {
				await ctx.call("sv-user.create", {
					userId: id,
					username: entry.username,
					passwordHash: entry.passwordHash,
					email: entry.email,
					phone: entry.phone,
					country: entry.country
				});
			} catch (err) {
				await this.profileNotWritten(ctx, id, entry.identities, err);
				throw err;
			}
			await this.registrationSettled(id);
			return { id, username: entry.username, region: reserved.region };
		},
		findLogin(ctx: Context, value: string): Promise<{ userId: string } | undefined> {
			return ctx.call<{ userId: string }, Identity>("sv-region.resolve", loginIdentity(value)).catch((err: { type?: string }) => {
				if (err.type === "USER_NOT_FOUND" || err.type === "VALIDATION_ERROR") return undefined;
				throw err;
			});
		},
		profile(row: UserRow): Profile {
			return {
				id: row.id,
				username: row.username,
				email: row.email_enc && row.email_kid ? open(this.pii, row.email_kid, row.email_enc, sealedPlace(row.id, "email")) : null,
				phone: row.phone_enc && row.phone_kid ? open(this.pii, row.phone_kid, row.phone_enc, sealedPlace(row.id, "phone")) : null,
				country: row.country,
				createdAt: new Date(Number(row.created_at)).toISOString()
			};
		},
		moveExport(id: string) {
			return this.db.selectFrom("users").selectAll().where("id", "=", id).execute();
		},
		async moveImport(id: string, rows: unknown[]) {
			await this.db.transaction().execute(async trx => {
				await trx.deleteFrom("users").where("id", "=", id).execute();
				if (rows.length)
					await trx
						.insertInto("users")
						.values((rows as UserRow[]).map(r => ({ ...r, id })))
						.execute();
			});
		},
		async moveCount(id: string) {
			const r = await this.db
				.selectFrom("users")
				.select(eb => eb.fn.countAll().as("n"))
				.where("id", "=", id)
				.executeTakeFirst();
			return Number(r?.n ?? 0);
		},
		async moveDelete(id: string) {
			const r = await this.db.deleteFrom("users").where("id", "=", id).executeTakeFirst();
			return Number(r.numDeletedRows);
		}
	},

	created() {
		this.pii = piiKeysFromEnv(process.env, "encrypt e-mail and phone at rest");
	}
};

export default svUser;
