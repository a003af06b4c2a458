import type { Kysely } from "kysely";
import type { Category, DeliveryChannel, Locale } from "./categories.ts";
import { CATEGORIES, CHANNELS, DEFAULT_LOCALE } from "./categories.ts";
import { SecurityNoticesRequiredError } from "./errors.ts";

/**
 * Which channels a user has turned off per category, and the locale notices are written in. A
 * user who never chose has everything on and English. Security notices in the inbox stay on.
 */

/** Per channel, per category: on or off. */
export type Switches = Record<DeliveryChannel, Record<Category, boolean>>;

export interface Preferences {
	locale: Locale;
	channels: Switches;
}

const everythingOn = (): Switches => Object.fromEntries(CHANNELS.map(channel => [channel, Object.fromEntries(CATEGORIES.map(c => [c, true]))])) as Switches;

/** The preferences a row of `notice_preferences` keeps (none: everything on, English). */
export function preferencesOf(row: { locale: string | null; opt_outs: string } | undefined): Preferences {
	const channels = everythingOn();
	for (const off of row ? (JSON.parse(row.opt_outs) as string[]) : []) {
		const [channel, category] = off.split(":") as [DeliveryChannel, Category];
		if (channels[channel]?.[category] !== undefined) channels[channel][category] = false;
	}
	return { locale: (row?.locale as Locale | null) ?? DEFAULT_LOCALE, channels };
}

export class PreferenceStore {
	private readonly db: Kysely<any>;

	constructor(db: Kysely<any>) {
		this.db = db;
	}

	async get(userId: string): Promise<Preferences> {
		const row = await this.db.selectFrom("notice_preferences").select(["locale", "opt_outs"]).where("user_id", "=", userId).executeTakeFirst();
		return preferencesOf(row as { locale: string | null; opt_outs: string } | undefined);
	}

	/** Replaces the user's choices; turning security notices off in the inbox is refused. */
	async set(userId: string, prefs: Preferences): Promise<Preferences> {
		if (prefs.channels.inbox.security === false) throw new SecurityNoticesRequiredError();
		const optOuts = CHANNELS.flatMap(channel => CATEGORIES.filter(c => prefs.channels[channel][c] === false).map(c => `${channel}:${c}`));
		const values = { locale: prefs.locale, opt_outs: JSON.stringify(optOuts), updated_at: Date.now() };
		const r = await this.db.updateTable("notice_preferences").set(values).where("user_id", "=", userId).executeTakeFirst();
		if (Number(r.numUpdatedRows) === 0)
			await this.db
				.insertInto("notice_preferences")
				.values({ user_id: userId, ...values })
				.execute()
				.catch(async () => {
					await this.db.updateTable("notice_preferences").set(values).where("user_id", "=", userId).execute();
				});
		return this.get(userId);
	}
}
