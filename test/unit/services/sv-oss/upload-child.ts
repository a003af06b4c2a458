import { toWire } from "../../../../services/sv-oss/wire.ts";
import { startOnFolder } from "./crash-node.ts";
import { endlessBody } from "./endless-body.ts";

/*
 * A child process for the crash test (test/integration/services/sv-oss-crash.spec.ts): cn-east
 * embedded on the data folder given, one user registered, then an upload whose body never ends,
 * 64 kB every 20 ms. It prints the user's id once the upload is under way; the test kills it there.
 */

const [dir, blindIndexKey] = process.argv.slice(2) as [string, string];
const { node } = await startOnFolder(dir, blindIndexKey, process.env);
const { userId } = await node.broker.call<{ userId: string }, unknown>("sv-region.register", {
	identities: [{ kind: "username", value: "crashing" }],
	country: "JP"
});
const endless = endlessBody(20, 40, () => process.stdout.write(`${userId}\n`));
await node.broker.call("sv-oss.upload", { userId, name: "endless.txt", contentType: "text/plain" }, { stream: toWire(endless), timeout: 0 });
