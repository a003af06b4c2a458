import { MongoClient } from "mongodb";
import { describe, it } from "vitest";
import { MongoLogStore } from "../../../services/sv-log/mongo-store.ts";
import { runId } from "../../harness/real-servers.ts";
import { logStoreContract } from "../../unit/services/sv-log/contract.ts";

/** No MongoDB server runs on this project's machines: the contract runs against one only when MONGO_URL names it. */
const server = process.env.MONGO_URL;

if (server) {
	const url = new URL(server);
	url.pathname = `/edgehome_t_${runId()}_log`;
	logStoreContract("mongodb", async () => {
		const store = await MongoLogStore.open(url.toString(), { ttlGraceMs: 86_400_000, timeoutMs: 5000 });
		const client = await new MongoClient(url.toString()).connect();
		return {
			store,
			tamper: async (region, seq, change) => {
				await client
					.db()
					.collection(`audit_${region.replace(/-/g, "_")}`)
					.updateOne({ _id: seq as never }, { $set: change });
			},
			cleanup: async () => {
				await client.db().dropDatabase();
				await client.close();
				await store.close();
			}
		};
	});
} else {
	console.log("sv-log MongoDB store contract: SKIPPED (set MONGO_URL=mongodb://host:27017 to run it against a real server)");
	describe.skip("the audit log store on mongodb (MONGO_URL not set)", () => {
		it("runs only against a real server", () => {});
	});
}
