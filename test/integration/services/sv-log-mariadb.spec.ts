import { migrate } from "../../../regions/stores/index.ts";
import { dropMysqlDatabase, openSqlStore } from "../../../regions/stores/sql.ts";
import { migrations } from "../../../services/sv-log/migrations.ts";
import { SqlLogStore } from "../../../services/sv-log/sql-store.ts";
import { REAL, runId } from "../../harness/real-servers.ts";
import { logStoreContract } from "../../unit/services/sv-log/contract.ts";

const url = `${REAL.mysql}/edgehome_t_${runId()}_log`;

logStoreContract("mariadb", async () => {
	const sql = await openSqlStore(url);
	await migrate(sql.db, "sv-log", migrations);
	return {
		store: new SqlLogStore(sql.db),
		tamper: async (region, seq, change) => {
			await sql.db.updateTable("audit_log").set(change).where("region", "=", region).where("seq", "=", seq).execute();
		},
		cleanup: async () => {
			await sql.close();
			await dropMysqlDatabase(url);
		}
	};
});
