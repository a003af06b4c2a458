import type { Kysely } from "kysely";
import type { ServiceSchema } from "moleculer";
import { regionRuntimeOf } from "../regions/runtime/region-runtime.ts";
import type { Migrations, SqlStore } from "../regions/stores/index.ts";
import { migrate } from "../regions/stores/index.ts";

/** What a service that mixes in `dbMixin` can use from its handlers. */
export interface DbVars<Tables> {
	db: Kysely<Tables>;
	dialect: SqlStore["dialect"];
}

/**
 * Gives a service its region's relational store as a typed query builder, after running the
 * service's own migrations. A failed migration rejects `started`, which stops start-up.
 * Inside a home-routed write its queries join that write's fenced transaction
 * (regions/ownership/fence.ts), so they commit only while this region owns the user.
 */
export function dbMixin<Tables>(migrations: Migrations): Partial<ServiceSchema> {
	return {
		async started(this: any) {
			const { sql } = regionRuntimeOf(this.broker).stores;
			const applied = await migrate(sql.db, this.name, migrations);
			if (applied.length) this.logger.info(`Applied migrations: ${applied.join(", ")}`);
			(this as DbVars<Tables>).db = sql.db as Kysely<Tables>;
			(this as DbVars<Tables>).dialect = sql.dialect;
		}
	};
}
