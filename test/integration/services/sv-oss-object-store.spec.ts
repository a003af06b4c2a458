import { connect } from "nats";
import { bucketOf, openObjectStore } from "../../../services/sv-oss/nats-store.ts";
import { REAL, runId } from "../../harness/real-servers.ts";
import { blobStoreContract } from "../../unit/services/sv-oss/store-contract.ts";

const bucket = bucketOf(`t${runId()}`);

blobStoreContract(
	"NATS JetStream Object Store",
	() => openObjectStore({ servers: REAL.nats, bucket }),
	async () => {
		const nc = await connect({ servers: REAL.nats });
		await (await nc.jetstreamManager()).streams.delete(`OBJ_${bucket}`).catch(() => undefined);
		await nc.close();
	}
);
