import { migrate } from "../../../../regions/stores/index.ts";
import { openSqlStore } from "../../../../regions/stores/sql.ts";
import { migrations } from "../../../../services/sv-log/migrations.ts";
import { SqlLogStore } from "../../../../services/sv-log/sql-store.ts";
import { logStoreContract } from "./contract.ts";

logStoreContract("sqlite", async () => {
	const sql = await openSqlStore("sqlite::memory:");
	await migrate(sql.db, "sv-log", migrations);
	return {
		store: new SqlLogStore(sql.db),
		tamper: async (region, seq, change) => {
			await sql.db.updateTable("audit_log").set(change).where("region", "=", region).where("seq", "=", seq).execute();
		},
		cleanup: () => sql.close()
	};
});
