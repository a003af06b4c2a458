import type { Kysely } from "kysely";
import type { Context, ServiceSchema } from "moleculer";
import { regionId, userId } from "../../kernel/fields.ts";
import type { PiiKeys, SealedPlace } from "../../kernel/sealing.ts";
import { open, seal } from "../../kernel/sealing.ts";
import type { IdentityKind } from "../../regions/directory/entries.ts";
import { envInt } from "../../regions/runtime/env.ts";

/**
 * The registrations this region started and has not seen finish. The directory's answer to a write
 * can be lost while the write still commits (a hub leader that lost its peers commits once one
 * returns), so a registration answered DIRECTORY_UNAVAILABLE may have reserved its identities for
 * a user who never got a profile. Each is journaled before the directory is asked; once no
 * registration can still be writing (the grace), a sweeper undoes the directory side of those
 * whose user has no profile.
 */

export const PENDING_TABLE = "pending_registrations";

/**
 * How old a journal row must be before the sweeper decides on it: past any registration's own
 * bound (sv-region.register's store writes, each ≤ 2 s, the 10 s call timeout, the ~10 s a hub leader
 * without peers still commits late). EDGEHOME_REGISTRATION_GRACE_MS overrides it (tests shorten it).
 */
export const REGISTRATION_GRACE_MS = 60_000;
/** Mean pause between sweeps (jittered ±50 %): EDGEHOME_REGISTRATION_SWEEP_MS. */
export const REGISTRATION_SWEEP_MS = 15_000;
/** Most journal rows one sweep decides on; the rest wait for the next. */
export const REGISTRATION_SWEEP_BATCH = 50;

export interface PendingRegistrationRow {
	user_id: string;
	/** The identities (JSON), sealed: they are logins, personal data. */
	identities_enc: string;
	identities_kid: string;
	created_at: number;
}

interface Tables {
	pending_registrations: PendingRegistrationRow;
	users: { id: string };
}

export type PendingIdentity = { kind: IdentityKind; value: string };

/** What the sweepers of this node decided, since start. */
export interface SweepCounts {
	rounds: number;
	/** Rows whose user has a profile: the registration finished, only the row was left. */
	finished: number;
	/** Rows whose registration was undone in the directory. */
	undone: number;
	/** Decisions put off to the next round (directory or home region unreachable, user moving). */
	deferred: number;
}

export interface PendingRegistrationMethods {
	journalRegistration(userId: string, identities: PendingIdentity[]): Promise<void>;
	registrationSettled(userId: string): Promise<void>;
	profileNotWritten(ctx: Context, userId: string, identities: PendingIdentity[], err: unknown): Promise<void>;
}

const place = (user: string): SealedPlace => ({ table: PENDING_TABLE, field: "identities", row: user });

/** A journal row for `userId`, its identities sealed to that row. */
export function pendingRow(pii: PiiKeys, user: string, identities: PendingIdentity[], now = Date.now()): PendingRegistrationRow {
	const sealed = seal(pii, JSON.stringify(identities), place(user));
	return { user_id: user, identities_enc: sealed.value, identities_kid: sealed.kid, created_at: now };
}

/** Answers that leave a call's outcome open: the callee may have run it. */
function outcomeUnknown(err: unknown): boolean {
	const type = (err as { type?: string }).type;
	return type === "OUTCOME_UNKNOWN" || type === "REQUEST_TIMEOUT" || type === "REQUEST_REJECTED";
}

/** The journal's methods, the `hasProfile` check it asks each home region, and the sweeper (started and stopped with the service). */
export function pendingRegistrationsMixin(): Partial<ServiceSchema> {
	return {
		actions: {
			hasProfile: {
				// Says whether a user id exists here: for the sweepers only.
				restricted: "directory",
				visibility: "public",
				home: { region: "region" },
				params: { $$strict: true, region: regionId, userId },
				async handler(ctx: Context<{ region: string; userId: string }>) {
					const db = this.db as Kysely<Tables>;
					const row = await db.selectFrom("users").select("id").where("id", "=", ctx.params.userId).executeTakeFirst();
					return { userId: ctx.params.userId, profile: Boolean(row) };
				}
			}
		},

		methods: {
			async journalRegistration(user: string, identities: PendingIdentity[]) {
				await (this.db as Kysely<Tables>)
					.insertInto(PENDING_TABLE)
					.values(pendingRow(this.pii, user, identities))
					.execute();
			},

			/** Drops the row of a registration whose outcome is known; a row left behind costs the sweeper one check. */
			async registrationSettled(user: string) {
				await (this.db as Kysely<Tables>)
					.deleteFrom(PENDING_TABLE)
					.where("user_id", "=", user)
					.execute()
					.catch((err: Error) => this.logger.warn(`registration ${user} is settled but its journal row stays: ${err.message}`));
			},

			/**
			 * The directory registered the user but writing the profile failed: undo at once when the
			 * profile is known not to exist; when it may (a lost answer), the sweeper decides later.
			 */
			async profileNotWritten(ctx: Context, user: string, identities: PendingIdentity[], err: unknown) {
				if (outcomeUnknown(err)) return;
				await ctx.call("sv-region.unregister", { userId: user, identities }).then(
					() => this.registrationSettled(user),
					() => undefined
				);
			},

			/** One sweep: the oldest rows past the grace, each finished, undone or left for the next round. */
			async sweepRegistrations() {
				const counts = this.sweepCounts as SweepCounts;
				counts.rounds++;
				const db = this.db as Kysely<Tables> | undefined;
				if (!db) return;
				const rows = await db
					.selectFrom(PENDING_TABLE)
					.selectAll()
					.where("created_at", "<", Date.now() - (this.registrationGraceMs as number))
					.orderBy("created_at")
					.limit(REGISTRATION_SWEEP_BATCH)
					.execute();
				for (const row of rows) {
					if (this.sweepStopped) return;
					try {
						const outcome: "finished" | "undone" | "deferred" = await this.settlePending(row);
						counts[outcome]++;
					} catch (err) {
						counts.deferred++;
						this.logger.debug(`registration ${row.user_id} stays journaled: ${(err as Error).message}`);
					}
				}
			},

			/**
			 * Decides on one journaled registration from the origin's user entry: none, or one whose
			 * home has no profile, is undone (only while that entry is unchanged); a profile finishes it.
			 */
			async settlePending(row: PendingRegistrationRow): Promise<"finished" | "undone" | "deferred"> {
				const user = row.user_id;
				const identities = JSON.parse(open(this.pii, row.identities_kid, row.identities_enc, place(user))) as PendingIdentity[];
				const entry = await this.broker.call<{ region: string; state: string; revision: number } | null, unknown>("sv-region.locate", { userId: user });
				if (entry?.state === "moving") return "deferred";
				const { profile } = entry
					? await this.broker.call<{ profile: boolean }, unknown>("sv-user.hasProfile", { region: entry.region, userId: user })
					: { profile: false };
				if (!profile) await this.broker.call("sv-region.unregister", { userId: user, identities, ...(entry ? { revision: entry.revision } : {}) });
				await (this.db as Kysely<Tables>).deleteFrom(PENDING_TABLE).where("user_id", "=", user).execute();
				return profile ? "finished" : "undone";
			}
		},

		created() {
			this.registrationGraceMs = envInt(process.env, "EDGEHOME_REGISTRATION_GRACE_MS", REGISTRATION_GRACE_MS, 100);
			this.registrationSweepMs = envInt(process.env, "EDGEHOME_REGISTRATION_SWEEP_MS", REGISTRATION_SWEEP_MS, 50);
			this.sweepCounts = { rounds: 0, finished: 0, undone: 0, deferred: 0 } satisfies SweepCounts;
		},

		started() {
			this.sweepStopped = false;
			const next = () => {
				if (this.sweepStopped) return;
				this.sweepTimer = setTimeout(
					() => {
						this.sweeping = this.sweepRegistrations()
							.catch((err: Error) => this.logger.warn(`sweeping pending registrations failed: ${err.message}`))
							.finally(next);
					},
					(this.registrationSweepMs as number) * (0.5 + Math.random())
				);
				this.sweepTimer.unref();
			};
			next();
		},

		/** Waits for a sweep under way (it stops after the row at hand) so that no call outlives the broker. */
		async stopped() {
			this.sweepStopped = true;
			clearTimeout(this.sweepTimer);
			await this.sweeping;
		}
	};
}
