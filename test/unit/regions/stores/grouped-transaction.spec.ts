import { openSqlStore } from "../../../../regions/stores/sql.ts";
import { groupedTransactionContract } from "./grouped-transaction-contract.ts";

// SQLite runs a group's statements one after another in Kysely's transaction.
groupedTransactionContract(
	"SQLite in memory",
	() => openSqlStore("sqlite::memory:"),
	store => store.close()
);
