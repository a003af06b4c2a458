import { dropMysqlDatabase } from "../../../regions/stores/sql.ts";
import { REGION_IDS } from "../../harness/embedded-regions.ts";
import { REAL, runId } from "../../harness/real-servers.ts";
import { noticeContract } from "../../unit/services/sv-notice/contract.ts";

const run = runId();
const urlOf = (region: string) => `${REAL.mysql}/edgehome_t_${run}_notice_${region.replace(/-/g, "_")}`;

noticeContract("mariadb", {
	sqlOf: urlOf,
	cleanup: async () => {
		for (const region of REGION_IDS) await dropMysqlDatabase(urlOf(region));
	}
});
