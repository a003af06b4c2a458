import { uploadHome } from "../../../../services/sv-oss/paced-calls.ts";
import { startKvNode } from "../../../harness/kv-node.ts";
import { endlessBody } from "./endless-body.ts";

/*
 * A gateway's end of a paced upload, for the kill -9 test (test/integration/services/sv-oss-pacing.spec.ts):
 * `node paced-upload-child.ts <nats-url> <directory-bucket> <namespace-prefix> <blind-index-key hex> <user id>`
 * with the capability keys in the environment; a cn-east node uploads a body that never ends (64 kB
 * every 5 ms) to the user's home, and prints "sending" once 2 MB have gone. The test kills it there.
 */

const [natsUrl, bucket, namespacePrefix, blindIndexKey, userId] = process.argv.slice(2) as [string, string, string, string, string];
const { node } = await startKvNode({
	region: "cn-east",
	natsUrl,
	bucket,
	namespacePrefix,
	blindIndexKey: Buffer.from(blindIndexKey, "hex"),
	env: { EDGEHOME_CAPABILITY_KEYS: process.env.EDGEHOME_CAPABILITY_KEYS! },
	group: "doomed"
});
// 2 MB gone: a few parts stored, more on their way.
const endless = endlessBody(5, 32, () => process.stdout.write("sending\n"));
await uploadHome(node.broker, { userId, name: "endless.txt", contentType: "text/plain" }, endless, { timeout: 60_000, idleMs: 30_000 });
